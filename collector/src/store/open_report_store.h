// Opens the ReportStore named by the collector's --db URL:
//   sqlite:PATH                 the embedded SQLite store (sqlite_report_store.h)
//   postgresql://... / postgres://...   not built in this version: ENOTSUP with a message saying so
// Anything else is EINVAL naming the accepted forms.
#pragma once

#include <memory>
#include <string_view>

#include "common/result.h"
#include "store/report_store.h"

namespace nhiguard::collector {

Result<std::unique_ptr<ReportStore>> open_report_store(std::string_view url);

}  // namespace nhiguard::collector
