// For unit tests of the agent's SQLite stores: a second, independent connection to the same file,
// to check what is on disk and to inject failures (triggers) behind the store's back.
#pragma once

#include <sqlite3.h>

#include <string>

namespace nhiguard::test_support {

// Runs `sql` on a separate connection to `path`; empty on success, else SQLite's message.
inline std::string execute_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string error;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    error = sqlite3_errmsg(db);
  } else {
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) error = message ? message : "?";
    sqlite3_free(message);
  }
  sqlite3_close(db);
  return error;
}

}  // namespace nhiguard::test_support
