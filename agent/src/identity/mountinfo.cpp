#include "identity/mountinfo.h"

#include "common/filesystem.h"
#include "common/text.h"

#include <charconv>
#include <map>

namespace nhiguard::identity {
namespace {

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    if (pos >= line.size()) break;
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    out.push_back(line.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

bool parse_u32(std::string_view s, uint32_t& out) {
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

Error line_error(size_t line_no, std::string_view why) {
  return Error{EINVAL, "mountinfo line " + std::to_string(line_no) + ": " + std::string(why)};
}

Result<MountEntry> parse_line(std::string_view line, size_t line_no) {
  const auto f = split_spaces(line);
  // id parent major:minor root mount_point options [optional...] - fstype source super_options
  if (f.size() < 10) return fail(line_error(line_no, "too few fields"));
  MountEntry m;
  if (!parse_u32(f[0], m.mount_id) || !parse_u32(f[1], m.parent_id)) {
    return fail(line_error(line_no, "bad mount id"));
  }
  const size_t colon = f[2].find(':');
  if (colon == std::string_view::npos || !parse_u32(f[2].substr(0, colon), m.dev_major) ||
      !parse_u32(f[2].substr(colon + 1), m.dev_minor)) {
    return fail(line_error(line_no, "bad major:minor"));
  }
  m.root = unescape_mount_field(f[3]);
  m.mount_point = unescape_mount_field(f[4]);
  m.mount_options = std::string(f[5]);
  // The separator is the first field equal to "-" after the fixed ones: optional fields are
  // tagged "tag[:value]" and never a bare dash, and escaped paths cannot contain a space.
  size_t sep = 6;
  while (sep < f.size() && f[sep] != "-") m.optional_fields.emplace_back(f[sep++]);
  if (sep + 3 > f.size()) return fail(line_error(line_no, "missing '-' separator or fields after it"));
  m.fs_type = unescape_mount_field(f[sep + 1]);
  m.source = unescape_mount_field(f[sep + 2]);
  m.super_options = sep + 3 < f.size() ? std::string(f[sep + 3]) : std::string();
  return m;
}

}  // namespace

std::string unescape_mount_field(std::string_view field) {
  const auto is_oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_oct(field[i + 1]) && is_oct(field[i + 2]) &&
        is_oct(field[i + 3])) {
      const int value = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
      if (value <= 0xff) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> mounts;
  size_t line_no = 0;
  for (const std::string_view line : split_lines(text)) {
    ++line_no;
    if (line.find_first_not_of(' ') == std::string_view::npos) continue;
    auto entry = parse_line(line, line_no);
    if (!entry) return fail(std::move(entry.error()));
    mounts.push_back(std::move(*entry));
  }
  return mounts;
}

std::vector<MountEntry> mounts_of_type(const std::vector<MountEntry>& mounts, std::string_view fs_type) {
  std::vector<MountEntry> out;
  for (const auto& m : mounts) {
    if (m.fs_type == fs_type) out.push_back(m);
  }
  return out;
}

Result<MountEntry> find_cgroup2(const std::vector<MountEntry>& mounts) {
  // A mount point hidden by a later mount on the same point is not reachable through that path.
  std::map<std::string, size_t> visible;  // mount point -> index of the last mount there
  for (size_t i = 0; i < mounts.size(); ++i) visible[mounts[i].mount_point] = i;

  const MountEntry* best = nullptr;
  int best_rank = 0;
  for (size_t i = 0; i < mounts.size(); ++i) {
    const MountEntry& m = mounts[i];
    if (m.fs_type != "cgroup2" || visible[m.mount_point] != i) continue;
    int rank = 1;
    if (m.root == "/") rank += 8;  // a bind of a sub-tree would give paths relative to that sub-tree
    if (m.mount_point == "/sys/fs/cgroup")
      rank += 4;
    else if (m.mount_point == "/sys/fs/cgroup/unified")
      rank += 2;
    if (rank > best_rank) {
      best = &m;
      best_rank = rank;
    }
  }
  if (best == nullptr) return fail(Error{ENOENT, "no cgroup2 mount in mountinfo (cgroup v1-only host?)"});
  return *best;
}

std::vector<std::string> bpffs_mount_points(const std::vector<MountEntry>& mounts) {
  std::vector<std::string> out;
  for (const auto& m : mounts_of_type(mounts, "bpf")) out.push_back(m.mount_point);
  return out;
}

std::vector<std::string> tracefs_mount_points(const std::vector<MountEntry>& mounts) {
  std::vector<std::string> out;
  for (const auto& m : mounts_of_type(mounts, "tracefs")) out.push_back(m.mount_point);
  return out;
}

Result<std::string> find_cgroup2_mount(const std::string& mountinfo_path) {
  auto text = read_text_file(mountinfo_path);
  if (!text) return fail(std::move(text.error()));
  auto mounts = parse_mountinfo(*text);
  if (!mounts) return fail(std::move(mounts.error()));
  auto cgroup2 = find_cgroup2(*mounts);
  if (!cgroup2) return fail(std::move(cgroup2.error()));
  return cgroup2->mount_point;
}

}  // namespace nhiguard::identity
