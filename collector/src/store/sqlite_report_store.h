// The SQLite ReportStore: one file (the collector's --db sqlite:PATH), opened through
// sqlite::open_durable (0600, WAL, synchronous=FULL, versioned migrations, damaged files refused).
//
// Reports are kept whole (the serialized Report as received) beside the columns the queries need;
// decisions, actions and their history, commands and lost ranges have their own tables. See the
// migrations in sqlite_report_store.cpp for the schema.
//
// Thread-safety: one connection, every method serialized by an internal mutex. Throughput comes
// from batching: store_reports() writes a whole batch (every agent's reports that arrived while the
// previous batch was committing) in one transaction, so one fsync covers many reports.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/report_store.h"

struct sqlite3;

namespace nhiguard::collector {

class SqliteReportStore final : public ReportStore {
 public:
  static constexpr int kSchemaVersion = 3;

  static Result<std::unique_ptr<SqliteReportStore>> open(const std::string& path);
  ~SqliteReportStore() override;

  Result<AgentSession> open_session(const AgentHello& hello) override;
  Result<void> close_session(std::string_view agent_id, std::string_view peer, int64_t now_ns) override;
  Result<StoreOutcome> store_reports(std::span<const IngestRecord> records) override;
  Result<v1::CommandStatus> add_command(const CommandRecord& record) override;
  Result<std::vector<v1::Command>> undelivered_commands(std::string_view agent_id) override;
  Result<void> mark_command_sent(std::string_view command_id, int64_t now_ns) override;
  Result<v1::CommandStatus> get_command(std::string_view command_id) override;
  Result<v1::Mode> fleet_mode() override;
  Result<void> set_fleet_mode(v1::Mode mode) override;
  Result<void> set_required_mode(std::string_view agent_id, v1::Mode mode) override;
  Result<std::vector<v1::AgentSummary>> list_agents() override;
  Result<std::vector<std::string>> agent_ids() override;
  Result<bool> agent_exists(std::string_view agent_id) override;
  Result<std::vector<v1::StoredDecision>> list_decisions(std::string_view agent_id, uint32_t limit) override;
  Result<std::vector<v1::StoredAction>> list_actions(const ActionQuery& query) override;
  Result<v1::StoredAction> find_action(std::string_view agent_id, std::string_view handle) override;
  Result<uint64_t> count_reports(std::string_view agent_id) override;
  Result<uint64_t> prune_events(int64_t received_before_ns, uint32_t max_rows) override;

  const std::string& path() const { return path_; }

 private:
  SqliteReportStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

  std::string path_;
  std::mutex mutex_;  // guards db_
  sqlite3* db_;
};

}  // namespace nhiguard::collector
