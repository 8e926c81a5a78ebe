#include "catalogue/canary_planter.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/filesystem.h"

namespace nhiguard::catalogue {
namespace {

// Random characters from `alphabet`; getrandom(2) so two hosts never plant the same canary.
Result<std::string> random_text(size_t length, std::string_view alphabet) {
  std::string bytes(length, '\0');
  size_t filled = 0;
  while (filled < length) {
    const ssize_t n = getrandom(bytes.data() + filled, length - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Error::from_current_errno("getrandom"));
    filled += static_cast<size_t>(n);
  }
  for (char& c : bytes) c = alphabet[static_cast<unsigned char>(c) % alphabet.size()];
  return bytes;
}

Result<std::string> canary_content(catalogue::CredentialClass credential_class) {
  constexpr std::string_view kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  constexpr std::string_view kMixed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  auto id = random_text(16, kUpper);
  auto secret = random_text(40, kMixed);
  if (!id || !secret) return fail(!id ? id.error() : secret.error());
  switch (credential_class) {
    case catalogue::CredentialClass::aws:
      return fmt::format("[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n", *id, *secret);
    case catalogue::CredentialClass::netrc:
      return fmt::format("machine api.internal login deploy password {}\n", *secret);
    case catalogue::CredentialClass::dotenv:
      return fmt::format("API_TOKEN={}\n", *secret);
    default:
      return fmt::format("token: {}\n", *secret);
  }
}

}  // namespace

Result<bool> plant_canary(const std::string& path, catalogue::CredentialClass credential_class) {
  const size_t slash = path.rfind('/');
  if (path.empty() || path.front() != '/' || path.back() == '/') {
    return fail(Error{EINVAL, "canary path must be an absolute file path: " + path});
  }
  if (slash > 0) {
    if (auto made = make_directories(path.substr(0, slash), 0700); !made) return fail(made.error());
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    return fail(Error::from_current_errno("create canary " + path));
  }
  auto content = canary_content(credential_class);
  if (!content) {
    ::close(fd);
    ::unlink(path.c_str());
    return fail(content.error());
  }
  const ssize_t written = ::write(fd, content->data(), content->size());
  const int err = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(content->size())) {
    ::unlink(path.c_str());
    return fail(Error::from_errno(written < 0 ? err : EIO, "write canary " + path));
  }
  return true;
}

}  // namespace nhiguard::catalogue
