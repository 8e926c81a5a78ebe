#include "identity/redaction_key.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "common/filesystem.h"

namespace nhiguard::identity {
namespace {

constexpr size_t kFileBytes = kRedactionKeyBytes + SHA256_DIGEST_LENGTH;

std::array<unsigned char, SHA256_DIGEST_LENGTH> checksum(const RedactionKey& key) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(key.data(), key.size(), digest.data());
  return digest;
}

// The key in the file, or why it cannot be used (ENOENT when there is none).
Result<RedactionKey> read_key(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    Error error = Error::from_current_errno("stat " + path);
    ::close(fd);
    return fail(std::move(error));
  }
  auto refuse = [&](std::string why) {
    ::close(fd);
    return fail(Error::plain(path + ": " + std::move(why)));
  };
  if (!S_ISREG(st.st_mode)) return refuse("not a regular file");
  if ((st.st_mode & 077) != 0)
    return refuse(fmt::format("mode {:04o} lets others read or change it", st.st_mode & 07777));
  if (st.st_uid != ::geteuid())
    return refuse(fmt::format("owned by uid {}, not the agent's {}", st.st_uid, ::geteuid()));
  if (static_cast<size_t>(st.st_size) != kFileBytes)
    return refuse(fmt::format("{} bytes, not {}", st.st_size, kFileBytes));
  std::array<unsigned char, kFileBytes> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return refuse(n < 0 ? std::string("read: ") + std::strerror(errno) : "shorter than its size");
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  RedactionKey key{};
  std::copy_n(bytes.begin(), key.size(), key.begin());
  const auto expected = checksum(key);
  if (!std::equal(expected.begin(), expected.end(), bytes.begin() + key.size())) {
    return fail(Error::plain(path + ": checksum mismatch (damaged)"));
  }
  return key;
}

}  // namespace

Result<LoadedRedactionKey> load_or_create_redaction_key(const std::string& state_dir) {
  const std::string path = state_dir + "/" + kRedactionKeyFile;
  LoadedRedactionKey out;
  auto existing = read_key(path);
  if (existing) {
    out.key = *existing;
    return out;
  }
  out.created = true;
  out.warning = existing.error().code == ENOENT ? "no key at " + path + ": created one"
                                                : existing.error().message +
                                                      ": replaced by a new key (earlier "
                                                      "fingerprints no longer correlate)";
  if (RAND_bytes(out.key.data(), static_cast<int>(out.key.size())) != 1) {
    return fail(Error::plain("cmdline redaction key: no random bytes from OpenSSL"));
  }
  std::string content(reinterpret_cast<const char*>(out.key.data()), out.key.size());
  const auto sum = checksum(out.key);
  content.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  // A file that is not ours to overwrite (a directory, a link) is moved aside, never followed.
  if (existing.error().code != ENOENT) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) ::rename(path.c_str(), (path + ".invalid").c_str());
  }
  ::unlink((path + ".tmp").c_str());  // a leftover tmp file would lend the key its mode
  if (auto written = write_file_atomically(path, content, 0600); !written) {
    out.persisted = false;
    out.warning += "; cannot store it (" + written.error().message + "): this run uses a key held in memory";
    return out;
  }
  return out;
}

}  // namespace nhiguard::identity
