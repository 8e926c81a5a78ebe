// The agent's durable SQLite files (rollback ledger, reporter outbox): one way to open them and a few
// RAII helpers over the C API, so every store has the same guarantees and error messages.
//
// open_durable(): creates a missing directory 0700 and the file 0600 before SQLite sees the path
// (an existing file is tightened to 0600, a symlink or non-regular file is refused), opens it with
// NOFOLLOW and FULLMUTEX, extended result codes and a 5 s busy timeout, switches to WAL with
// synchronous=FULL (a committed transaction survives a crash or power loss), runs a quick integrity
// check, and applies the store's ordered migrations (PRAGMA user_version), each in its own
// transaction. A file written by a newer schema is refused (ENOTSUP), a file that is not a database
// or is damaged is refused (EUCLEAN) with a hint to move it aside: a security record is never
// silently re-created.
//
// Errors carry an errno derived from SQLite's result code (errno_for): ENOSPC disk full, EROFS
// read-only, EBUSY locked past the busy timeout, EUCLEAN not a database / corrupt, EEXIST primary
// key or unique violation, EINVAL other constraint, EIO otherwise (or the system errno of an I/O
// error).
//
// Thread-safety: the helpers hold no state of their own; a connection (sqlite3*) must be used by one
// thread at a time, which every store guarantees with its own mutex.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace nhiguard::sqlite {

// SQLite result code -> errno, as described above.
int errno_for(sqlite3* db, int rc);

// "what: <SQLite's message for the connection's last call>", with errno_for's code. For a damaged
// file the message also says to move the file aside.
Error sqlite_error(sqlite3* db, int rc, std::string_view what);

// A prepared statement, finalized on scope exit. Check prepare_status() before use.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  int prepare_status() const { return rc_; }
  sqlite3_stmt* get() const { return stmt_; }

  void bind(int index, int64_t value);
  // Text is copied (SQLITE_TRANSIENT); an empty view is stored as '' (never NULL).
  void bind(int index, std::string_view text);
  void bind_blob(int index, std::string_view bytes);
  void bind_null(int index);

  int step();
  // Makes the statement runnable again with the same bindings changed by later bind() calls.
  void reset();

  int64_t int_at(int column) const;
  bool is_null(int column) const;
  std::string text_at(int column) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = 0;
};

// Runs one or more statements without results.
Result<void> exec(sqlite3* db, const char* sql, std::string_view what);

// BEGIN IMMEDIATE takes the write lock up front, so a read-then-write cannot lose a race with another
// connection between its SELECT and its write. Rolled back on scope exit unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<void> begin(std::string_view what);
  Result<void> commit(std::string_view what);

 private:
  sqlite3* db_;
  bool open_ = false;
};

// One schema step. Append only: a shipped migration never changes.
struct Migration {
  int version;
  const char* sql;
};

struct DurableFile {
  std::string_view label;                 // "ledger", "outbox": names the store in every message
  std::span<const Migration> migrations;  // ordered by version, the last one is the current schema
};

// Opens (creating if missing) `path` as described in the header comment. The caller owns the
// returned connection and closes it with sqlite3_close_v2.
Result<sqlite3*> open_durable(const std::string& path, const DurableFile& spec);

}  // namespace nhiguard::sqlite
