#include "common/state_file.h"

#include <openssl/evp.h>

#include <array>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/filesystem.h"

namespace nhiguard {
namespace {

std::string sha256_hex(const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Error damaged(const std::string& path, std::string_view why) {
  return Error{EUCLEAN, fmt::format("state file {} is damaged: {}", path, why)};
}

}  // namespace

std::string render_state_file(const nlohmann::json& content) {
  nlohmann::json stored = content;
  stored.erase(kStateFileChecksumKey);
  // A string that is not UTF-8 would make dump() throw and the agent stop; each state file keeps
  // its bytes exact by escaping what can hold them (credential_ids.h), and anything left is
  // written replaced rather than not at all.
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  const std::string checksum = sha256_hex(stored.dump(-1, ' ', false, replace));
  stored[kStateFileChecksumKey] = checksum;
  return stored.dump(-1, ' ', false, replace) + "\n";
}

Result<void> write_state_file(const std::string& path, const nlohmann::json& content) {
  if (!content.is_object()) return fail(Error{EINVAL, "write state file " + path + ": content is not a JSON object"});
  return write_file_atomically(path, render_state_file(content), 0600);
}

Result<StateFileContent> parse_state_file(std::string_view text, const std::string& path) {
  if (text.empty()) return fail(damaged(path, "empty"));
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) return fail(damaged(path, "not JSON (truncated or overwritten)"));
  if (!parsed.is_object()) return fail(damaged(path, "not a JSON object"));
  StateFileContent out;
  auto checksum = parsed.find(kStateFileChecksumKey);
  if (checksum == parsed.end()) {
    out.unchecked = true;
  } else {
    const std::string stated = checksum->is_string() ? checksum->get<std::string>() : "";
    parsed.erase(checksum);
    if (stated != sha256_hex(parsed.dump())) return fail(damaged(path, "checksum mismatch (edited or torn)"));
  }
  out.content = std::move(parsed);
  return out;
}

Result<std::optional<StateFileContent>> read_state_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<StateFileContent>{};
    return fail(Error::from_current_errno("read state file " + path));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(Error::from_current_errno("read state file " + path));
  auto parsed = parse_state_file(text.str(), path);
  if (!parsed) return fail(std::move(parsed.error()));
  return std::optional<StateFileContent>(std::move(*parsed));
}

Result<StateFileLoad> load_state_file(const std::string& path) {
  auto read = read_state_file(path);
  if (read) return StateFileLoad{.file = std::move(*read)};
  if (read.error().code != EUCLEAN) return fail(std::move(read.error()));
  auto moved = quarantine_file(path);
  if (!moved) return fail(Error{moved.error().code, read.error().message + "; " + moved.error().message});
  return StateFileLoad{.damage = read.error().message, .quarantined_as = *moved};
}

}  // namespace nhiguard
