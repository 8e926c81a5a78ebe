#include "identity/exe_hash_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

namespace nhiguard::identity {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string to_hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

ExeFileKey key_of(const struct stat& st) {
  return ExeFileKey{
      .dev = static_cast<uint64_t>(st.st_dev),
      .ino = static_cast<uint64_t>(st.st_ino),
      .size = static_cast<uint64_t>(st.st_size),
      .mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
  };
}

// Reads the file from offset 0 to EOF through `fd` (pread: the fd's offset is not shared state
// worth relying on) and returns the digest and the byte count.
Result<std::pair<std::string, uint64_t>> digest_fd(int fd, const std::string& what) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return fail(Error::plain("EVP sha256 init failed"));
  }
  std::vector<unsigned char> buf(1 << 16);
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(total));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Error::from_current_errno("read " + what));
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n)) != 1) {
      return fail(Error::plain("EVP sha256 update failed"));
    }
    total += static_cast<uint64_t>(n);
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1) return fail(Error::plain("EVP sha256 final failed"));
  return std::pair{to_hex(md.data(), len), total};
}

}  // namespace

std::string sha256_hex(std::span<const unsigned char> data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) return {};
  return to_hex(md.data(), len);
}

size_t ExeHashCache::KeyHash::operator()(const ExeFileKey& k) const {
  size_t h = std::hash<uint64_t>{}(k.ino);
  for (uint64_t v : {k.dev, k.size, static_cast<uint64_t>(k.mtime_ns), static_cast<uint64_t>(k.ctime_ns)}) {
    h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return h;
}

ExeHashCache::ExeHashCache(Options options)
    : options_(std::move(options)), index_(std::max<size_t>(options_.max_entries, 1)) {
  if (options_.max_entries == 0) options_.max_entries = 1;
}

Result<ExeHash> ExeHashCache::hash_pid(pid_t pid) {
  const std::string path = options_.proc_root + "/" + std::to_string(pid) + "/exe";
  return hash_path(path);
}

Result<ExeHash> ExeHashCache::hash_proc_dir(int proc_pid_dir_fd, pid_t pid) {
  const std::string what = "/proc/" + std::to_string(pid) + "/exe";
  const int fd = ::openat(proc_pid_dir_fd, "exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + what));
  auto result = hash_open_file(fd, what);
  ::close(fd);
  return result;
}

Result<ExeHash> ExeHashCache::hash_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  auto result = hash_open_file(fd, path);
  ::close(fd);
  return result;
}

Result<ExeHash> ExeHashCache::hash_open_file(int fd, const std::string& what) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return fail(Error::from_current_errno("fstat " + what));
  if (!S_ISREG(st.st_mode)) return fail(Error{EINVAL, what + " is not a regular file"});

  ExeHash out;
  out.file = key_of(st);
  {
    std::lock_guard lock(mu_);
    if (const std::string* digest = index_.find(out.file)) {
      ++stats_.hits;
      out.sha256 = *digest;
      out.cached = true;
      return out;
    }
    ++stats_.misses;
    if (out.file.size > options_.max_file_size) {
      ++stats_.too_large;
      out.too_large = true;
      return out;
    }
  }

  auto digest = digest_fd(fd, what);
  if (!digest) return fail(std::move(digest.error()));

  // A file written while it was read hashes to neither version; report it, do not cache it.
  struct stat after{};
  if (::fstat(fd, &after) != 0) return fail(Error::from_current_errno("fstat " + what));
  if (!(key_of(after) == out.file) || digest->second != out.file.size) {
    return fail(Error{EAGAIN, what + " changed while it was being hashed"});
  }
  out.sha256 = std::move(digest->first);

  std::lock_guard lock(mu_);
  stats_.bytes_hashed += digest->second;
  if (!index_.contains(out.file)) index_.put(out.file, out.sha256);
  return out;
}

size_t ExeHashCache::size() const {
  std::lock_guard lock(mu_);
  return index_.size();
}

ExeHashCache::Stats ExeHashCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace nhiguard::identity
