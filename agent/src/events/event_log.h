// JsonLineWriter: the agent's local event log, one compact JSON object per line (JSON Lines).
//
// File handling:
//   - opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NOFOLLOW, mode 0600 (an existing file is
//     narrowed to 0600: events name credential paths and identities); missing parent directories
//     are created 0700, existing ones are left alone;
//   - size-based rotation: when a line would take the file past max_bytes, path.<keep> is
//     removed, path.<i> becomes path.<i+1>, path becomes path.1 and a new path is opened;
//     max_bytes 0 never rotates, keep 0 keeps no rotated file;
//   - the file is reopened when it was removed or renamed by someone else (checked on every write
//     by comparing the open file's inode with the path's), and by reopen() (e.g. on SIGHUP);
//   - it is opened lazily: a writer whose directory or disk is unavailable is still usable, and
//     starts writing again as soon as the location is.
//
// Failure: a write that fails (ENOSPC, EIO, unwritable location) returns an Error saying what
// failed, counts the line as dropped and never throws. A partially written line is cut off again
// with ftruncate so the file only ever holds whole lines. Events are never dropped silently: the
// count is in stats() and the daemon reports it.
//
// Mirroring to stdout writes the same line to mirror_fd after the file; a mirror failure is counted
// but does not fail the write. The daemon must ignore SIGPIPE, as for any write to stdout.
//
// Thread-safety: every method may be called from any thread; lines from concurrent writers are
// never interleaved (one mutex, and one write(2) per line with O_APPEND).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace nhiguard::events {

struct JsonLineWriterOptions {
  std::string path;               // absolute path of the log file
  bool mirror_stdout = false;     // also write every line to mirror_fd
  int mirror_fd = STDOUT_FILENO;  // not owned; tests pass a pipe
  uint64_t max_bytes = 64ull << 20;
  uint32_t keep = 3;
};

struct JsonLineWriterStats {
  uint64_t lines_written = 0;
  uint64_t bytes_written = 0;
  uint64_t lines_dropped = 0;  // writes that returned an error
  uint64_t rotations = 0;
  uint64_t rotation_failures = 0;  // the line was still written, to the unrotated file
  uint64_t mirror_failures = 0;
};

class JsonLineWriter {
 public:
  explicit JsonLineWriter(JsonLineWriterOptions options);
  ~JsonLineWriter();
  JsonLineWriter(const JsonLineWriter&) = delete;
  JsonLineWriter& operator=(const JsonLineWriter&) = delete;

  // Opens (creating directories and file) now, to report a bad location at start-up. Optional.
  Result<void> open();

  // Appends record.dump() and a newline. Invalid UTF-8 in strings is replaced (U+FFFD) rather than
  // thrown on; callers that need byte-exact strings escape them first (common/json_escape.h).
  Result<void> write(const nlohmann::json& record);

  // Appends one already-serialised line (without its newline; must not contain one).
  Result<void> write_line(std::string_view line);

  // Closes and reopens the file at path (after external rotation).
  Result<void> reopen();

  JsonLineWriterStats stats() const;
  const std::string& path() const { return options_.path; }

 private:
  Result<void> open_locked();
  Result<void> ensure_open_locked();
  Result<void> rotate_locked();
  void close_locked();

  const JsonLineWriterOptions options_;
  mutable std::mutex mutex_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t size_ = 0;  // current file size, tracked to decide rotation without an fstat per line
  JsonLineWriterStats stats_;
};

}  // namespace nhiguard::events
