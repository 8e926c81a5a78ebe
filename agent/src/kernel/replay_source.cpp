#include "kernel/replay_source.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace nhiguard::kernel {
namespace {

Result<std::vector<std::byte>> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::from_current_errno("open " + path));
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail(Error::from_current_errno("read " + path));
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

}  // namespace

Result<std::unique_ptr<ReplaySource>> ReplaySource::from_files(const std::vector<std::string>& paths) {
  std::vector<std::vector<std::byte>> records;
  for (const auto& path : paths) {
    auto bytes = read_bytes(path);
    if (!bytes) return fail(bytes.error());
    records.push_back(std::move(*bytes));
  }
  return std::make_unique<ReplaySource>(std::move(records));
}

Result<std::unique_ptr<ReplaySource>> ReplaySource::from_recording(const std::string& path) {
  auto bytes = read_bytes(path);
  if (!bytes) return fail(bytes.error());
  std::vector<std::vector<std::byte>> records;
  size_t at = 0;
  while (at < bytes->size()) {
    if (bytes->size() - at < 4) return fail(Error::plain(fmt::format("{}: torn frame header at byte {}", path, at)));
    const auto* p = reinterpret_cast<const unsigned char*>(bytes->data() + at);
    const uint32_t size = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    at += 4;
    if (bytes->size() - at < size) {
      return fail(Error::plain(
          fmt::format("{}: frame at byte {} wants {} bytes, {} left", path, at - 4, size, bytes->size() - at)));
    }
    records.emplace_back(bytes->begin() + static_cast<ptrdiff_t>(at),
                         bytes->begin() + static_cast<ptrdiff_t>(at + size));
    at += size;
  }
  return std::make_unique<ReplaySource>(std::move(records));
}

Result<int> ReplaySource::consume(RecordSink& sink) {
  int n = 0;
  for (; next_ < records_.size(); ++next_, ++n) sink.on_record(records_[next_]);
  return n;
}

std::vector<std::byte> recording_frame(std::span<const std::byte> record) {
  const auto size = static_cast<uint32_t>(record.size());
  std::vector<std::byte> frame(4 + record.size());
  for (int i = 0; i < 4; ++i) frame[static_cast<size_t>(i)] = static_cast<std::byte>((size >> (8 * i)) & 0xff);
  std::memcpy(frame.data() + 4, record.data(), record.size());
  return frame;
}

}  // namespace nhiguard::kernel
