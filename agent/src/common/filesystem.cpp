#include "common/filesystem.h"

#include <sys/stat.h>

namespace nhiguard {

Result<void> make_directories(const std::string& path, mode_t mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return fail(Error::from_current_errno("create directory " + prefix));
    }
    if (slash == std::string::npos) break;
  }
  return {};
}

}  // namespace nhiguard
