// The host's command-line redaction key: the HMAC key of CmdlineRedactor's fingerprints.
//
// Kept in <state_dir>/cmdline_redaction.key, mode 0600, owned by the agent's user: 32 random bytes
// (OpenSSL's RAND_bytes) followed by their SHA-256, 64 bytes in all, written atomically (tmp file,
// fsync, rename, directory fsync). The key never leaves the host: with it, anyone could test a
// guessed password against a fingerprint, so a file that is not a regular file, is readable or
// writable by group or others, belongs to another user, has the wrong size or fails its checksum is
// not used: it is replaced by a new key with a warning naming the reason (fingerprints made with the
// old key then no longer correlate with new ones). A missing file is created the same way.
//
// When the new key cannot be stored (a full or read-only state_dir), the agent still redacts, with
// a key held in memory for this run only, and says so: redaction never depends on the disk.
//
// Thread-safety: load_or_create_redaction_key is not meant to race with itself on one directory.
#pragma once

#include <string>

#include "common/result.h"
#include "identity/cmdline_redactor.h"

namespace nhiguard::identity {

inline constexpr const char* kRedactionKeyFile = "cmdline_redaction.key";

struct LoadedRedactionKey {
  RedactionKey key{};
  bool created = false;   // a new key (missing or unusable file)
  bool persisted = true;  // false: the new key could not be written and lives in memory only
  std::string warning;    // what was wrong with the file, or why the key is not persisted; empty when fine
};

// Fails only when no random key can be made at all.
Result<LoadedRedactionKey> load_or_create_redaction_key(const std::string& state_dir);

}  // namespace nhiguard::identity
