// Small text helpers for the line-oriented files of /proc and cgroupfs.
#pragma once

#include <string_view>
#include <vector>

namespace nhiguard {

// The '\n'-separated lines of `text` (views into it); a last line without '\n' is included, the
// empty string after a final '\n' is not.
std::vector<std::string_view> split_lines(std::string_view text);

}  // namespace nhiguard
