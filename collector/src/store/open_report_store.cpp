#include "store/open_report_store.h"

#include <cerrno>
#include <string>

#include "store/sqlite_report_store.h"

namespace nhiguard::collector {

Result<std::unique_ptr<ReportStore>> open_report_store(std::string_view url) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (url.starts_with(kSqlite)) {
    const std::string path(url.substr(kSqlite.size()));
    if (path.empty()) return fail(Error{EINVAL, "--db sqlite:PATH: the path is empty"});
    auto store = SqliteReportStore::open(path);
    if (!store) return fail(std::move(store.error()));
    return std::unique_ptr<ReportStore>(std::move(*store));
  }
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    return fail(Error{ENOTSUP,
                      "--db postgresql://...: PostgreSQL storage is not built in this version of nhiguard-collector; "
                      "use --db sqlite:PATH"});
  }
  return fail(Error{EINVAL, "--db '" + std::string(url) + "': expected sqlite:PATH or postgresql://..."});
}

}  // namespace nhiguard::collector
