#include "common/sqlite_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "common/filesystem.h"

namespace nhiguard::sqlite {
namespace {

// Another process (nhiguardctl reading, a second agent by mistake) may hold the write lock briefly.
constexpr int kBusyTimeoutMs = 5000;

// Creates the directory (0700) and the file (0600) before SQLite sees the path: SQLite would create
// the file with 0644 & ~umask, readable by every local user. An existing file is tightened to 0600;
// a symlink or non-regular file is refused.
Result<void> prepare_file(const std::string& path, std::string_view label) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto made = make_directories(path.substr(0, slash), 0700); !made) return made;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(Error::from_current_errno(fmt::format("open {} {}", label, path)));
  struct stat st{};
  Result<void> result;
  if (fstat(fd, &st) != 0) {
    result = fail(Error::from_current_errno(fmt::format("stat {} {}", label, path)));
  } else if (!S_ISREG(st.st_mode)) {
    result = fail(Error{EINVAL, fmt::format("open {} {}: not a regular file", label, path)});
  } else if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) != 0) {
    result = fail(Error::from_current_errno(fmt::format("chmod 0600 {} {}", label, path)));
  }
  ::close(fd);
  return result;
}

// The single text value of a one-row PRAGMA or query.
Result<std::string> query_text(sqlite3* db, const char* sql, std::string_view what) {
  Statement stmt(db, sql);
  if (stmt.prepare_status() != SQLITE_OK) return fail(sqlite_error(db, stmt.prepare_status(), what));
  const int rc = stmt.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
  return stmt.text_at(0);
}

Result<void> migrate(sqlite3* db, const std::string& path, const DurableFile& spec) {
  const int latest = spec.migrations.back().version;
  for (const Migration& m : spec.migrations) {
    const std::string what = fmt::format("migrate {} {} to schema {}", spec.label, path, m.version);
    Transaction txn(db);
    if (auto begun = txn.begin(what); !begun) return begun;
    // Read inside the write transaction: another process may have migrated meanwhile.
    auto current = query_text(db, "PRAGMA user_version", what);
    if (!current) return fail(std::move(current.error()));
    const int version = std::stoi(*current);
    if (version > latest) {
      return fail(Error{ENOTSUP, fmt::format("open {} {}: schema version {} is newer than this agent's {}; "
                                             "refusing to use it",
                                             spec.label, path, version, latest)});
    }
    if (version >= m.version) continue;
    if (auto applied = exec(db, m.sql, what); !applied) return applied;
    if (auto bumped = exec(db, fmt::format("PRAGMA user_version = {}", m.version).c_str(), what); !bumped) {
      return bumped;
    }
    if (auto committed = txn.commit(what); !committed) return committed;
  }
  return {};
}

}  // namespace

int errno_for(sqlite3* db, int rc) {
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) return EEXIST;
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return ENOSPC;
    case SQLITE_READONLY:
      return EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return EBUSY;
    case SQLITE_NOMEM:
      return ENOMEM;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return EACCES;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return EUCLEAN;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
      return EINVAL;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
      const int sys = db ? sqlite3_system_errno(db) : 0;
      return sys != 0 ? sys : EIO;
    }
    default:
      return EIO;
  }
}

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  // sqlite3_errmsg carries the detail (a trigger's message, "disk I/O error"); it describes the
  // connection's last call, which is this one: callers hold their store's mutex.
  const char* detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = fmt::format("{}: {}", what, detail);
  if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
    message += " (the file is damaged or is not an nhiguard database; move it aside to start a new one)";
  }
  return Error{errno_for(db, rc), std::move(message)};
}

Statement::Statement(sqlite3* db, std::string_view sql) {
  rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
}
Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

void Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
}
void Statement::bind(int index, std::string_view text) {
  // An empty string_view may have a null data(), which SQLite would store as NULL.
  sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}
void Statement::bind_blob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.empty() ? "" : bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
}
void Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
}
int Statement::step() {
  return sqlite3_step(stmt_);
}
void Statement::reset() {
  sqlite3_reset(stmt_);
}
int64_t Statement::int_at(int column) const {
  return sqlite3_column_int64(stmt_, column);
}
bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}
std::string Statement::text_at(int column) const {
  // Works for TEXT and BLOB columns alike: the bytes as stored.
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  return bytes ? std::string(bytes, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
}

Result<void> exec(sqlite3* db, const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, what));
  return {};
}

Transaction::~Transaction() {
  if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Result<void> Transaction::begin(std::string_view what) {
  auto started = exec(db_, "BEGIN IMMEDIATE", what);
  open_ = started.has_value();
  return started;
}

Result<void> Transaction::commit(std::string_view what) {
  auto done = exec(db_, "COMMIT", what);
  // A failed COMMIT may leave the transaction open (SQLITE_BUSY); the destructor rolls it back.
  if (done) open_ = false;
  return done;
}

Result<sqlite3*> open_durable(const std::string& path, const DurableFile& spec) {
  const std::string opening = fmt::format("open {} {}", spec.label, path);
  if (path.empty()) return fail(Error{EINVAL, fmt::format("open {}: empty path", spec.label)});
  if (spec.migrations.empty()) return fail(Error{EINVAL, opening + ": no schema"});
  if (auto prepared = prepare_file(path, spec.label); !prepared) return fail(std::move(prepared.error()));

  sqlite3* db = nullptr;
  // FULLMUTEX on top of the store's own mutex costs nothing measurable and keeps the connection
  // safe even if a future method forgets the lock. NOFOLLOW: the path was just checked not to be a
  // symlink.
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
  if (rc != SQLITE_OK) {
    Error e = sqlite_error(db, rc, opening);
    sqlite3_close_v2(db);
    return fail(std::move(e));
  }
  auto close_on_error = [db](Error e) {
    sqlite3_close_v2(db);
    return fail(std::move(e));
  };
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // The first statement reads the header: a file that is not a database fails here (SQLITE_NOTADB).
  auto mode = query_text(db, "PRAGMA journal_mode=WAL", opening + ": set WAL journal mode");
  if (!mode) return close_on_error(std::move(mode.error()));
  if (*mode != "wal") return close_on_error(Error{EIO, fmt::format("{}: journal mode is '{}'", opening, *mode)});
  // FULL: a WAL commit is fsynced before COMMIT returns. A security record must not lose the last
  // write on power loss (NORMAL could).
  if (auto r = exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", opening); !r) {
    return close_on_error(std::move(r.error()));
  }
  // Catch a damaged file now with a clear message, not halfway through a rollback.
  auto verdict = query_text(db, "PRAGMA quick_check(1)", opening + ": integrity check");
  if (!verdict) return close_on_error(std::move(verdict.error()));
  if (*verdict != "ok") {
    std::replace(verdict->begin(), verdict->end(), '\n', ' ');  // one log line
    return close_on_error(Error{EUCLEAN, fmt::format("{}: integrity check: {} (the file is damaged; move it aside to "
                                                     "start a new one)",
                                                     opening, *verdict)});
  }
  if (auto migrated = migrate(db, path, spec); !migrated) return close_on_error(std::move(migrated.error()));
  return db;
}

}  // namespace nhiguard::sqlite
