// Small filesystem helpers shared by the agent's modules.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard {

// Reads a whole file (e.g. mountinfo, whose size is not known up front). Fails with the errno and path.
Result<std::string> read_text_file(const std::string& path);

// Reads `fd` to its end, or until `limit` bytes, retrying on EINTR, and closes it in every case:
// the one read loop behind every whole-file read (std::ifstream would lose the errno). A failed
// read is an Error with `read_error` as its context ("read /proc/1/stat: Permission denied").
Result<std::string> read_to_end(int fd, const std::string& read_error, size_t limit = SIZE_MAX);

// mkdir -p: creates every missing component of `path` with `mode` (existing ones are left as
// they are). Agent state and pins are private, hence the 0700 default.
Result<void> make_directories(const std::string& path, mode_t mode = 0700);

// One atomic replacement of `path`, in its two steps: write() puts the new content in `path`.tmp
// (created with `mode`, no symlink followed) and fsyncs it; commit() renames it over `path` and
// fsyncs the directory. Until commit() returns, `path` is the old file whatever happens (a crash
// in between leaves the old file and a stale `path`.tmp, which the next write truncates). The
// destructor of an uncommitted writer removes the temporary file. Not thread-safe: one writer per
// path at a time (callers serialise their writes to one file).
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path, mode_t mode = 0600);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Result<void> write(std::string_view content);
  Result<void> commit();

 private:
  std::string path_;
  std::string tmp_;
  mode_t mode_;
  bool written_ = false;
  bool committed_ = false;
};

// Replaces `path` with `content` so that a crash leaves the old or the new file, never a torn one
// (AtomicFileWriter's write() then commit()).
Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0600);

// Moves a damaged file out of the way, keeping it for forensics: renames `path` to
// `path`.damaged-<UTC time, e.g. 20261203T161502Z> (a numeric suffix when that exists already),
// together with the SQLite companions `path`-wal and `path`-shm when they exist, and fsyncs the
// directory. Returns the new name of `path`. A symlink or a non-regular file is refused (EINVAL):
// only the agent's own files are ever moved.
Result<std::string> quarantine_file(const std::string& path);

}  // namespace nhiguard
