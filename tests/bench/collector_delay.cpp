// collector_delay: reads a collector's SQLite database and prints, for the credential_access reports
// of one agent outbox, how long each took from the kernel's event to the agent's outbox and to the
// collector:
//   kernel -> outbox     created_at (when the agent wrote the report to its outbox) - event time
//   kernel -> collector  received_at (when the collector ingested it)               - event time
// The event time is the kernel's CLOCK_BOOTTIME stamp put on the wall clock by the agent
// (CredentialAccessEvent.time_unix_ns). Agent and collector share the host's clock in the
// benchmark, so no skew enters the numbers.
//
// Usage: collector_delay --db PATH --outbox ID [--since-seq N]
// Output: one line per delay: "<what> n=<count> p50=<ms> p90=<ms> p99=<ms> max=<ms>".
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "nhiguard/v1/agent.pb.h"

namespace {

double percentile_ms(std::vector<int64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(values.size())));
  return static_cast<double>(values[index]) / 1e6;
}

void print(const char* what, const std::vector<int64_t>& values) {
  std::printf("%-20s n=%zu p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n", what, values.size(),
              percentile_ms(values, 50), percentile_ms(values, 90), percentile_ms(values, 99),
              percentile_ms(values, 100));
}

}  // namespace

int main(int argc, char** argv) {
  std::string db_path;
  std::string outbox;
  long long since_seq = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--db") == 0) {
      db_path = argv[i + 1];
    } else if (std::strcmp(argv[i], "--outbox") == 0) {
      outbox = argv[i + 1];
    } else if (std::strcmp(argv[i], "--since-seq") == 0) {
      since_seq = std::atoll(argv[i + 1]);
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (db_path.empty() || outbox.empty()) {
    std::fprintf(stderr, "usage: collector_delay --db PATH --outbox ID [--since-seq N]\n");
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "open %s: %s\n", db_path.c_str(), sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT created_at_ns, received_at_ns, body FROM reports WHERE outbox_id = ?1 AND sequence > ?2 "
      "AND kind = 'credential_access' ORDER BY sequence";
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "query %s: %s\n", db_path.c_str(), sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_bind_text(stmt, 1, outbox.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, since_seq);
  std::vector<int64_t> to_outbox;
  std::vector<int64_t> to_collector;
  size_t undecodable = 0;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const int64_t created = sqlite3_column_int64(stmt, 0);
    const int64_t received = sqlite3_column_int64(stmt, 1);
    nhiguard::v1::Report report;
    const void* body = sqlite3_column_blob(stmt, 2);
    if (!report.ParseFromArray(body, sqlite3_column_bytes(stmt, 2)) || !report.has_credential_access()) {
      ++undecodable;
      continue;
    }
    const int64_t event = report.credential_access().time_unix_ns();
    to_outbox.push_back(created - event);
    to_collector.push_back(received - event);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  print("kernel -> outbox", to_outbox);
  print("kernel -> collector", to_collector);
  if (undecodable > 0) std::printf("(%zu rows without a credential_access body skipped)\n", undecodable);
  return to_collector.empty() ? 1 : 0;
}
