// ReportStore: everything the collector keeps — agents, their reports (events, decisions, action
// updates, command results), actions with their full state history, operator commands, and the
// fleet-wide mode — as the three interfaces a storage backend implements:
//   IngestStore   (ingest_store.h)   sessions, reports, retention: the agent streams' write side
//   CommandStore  (command_store.h)  operator commands and their delivery, fleet and agent modes
//   QueryStore    (query_store.h)    the operator API's reads
// SqliteReportStore (sqlite_report_store.h) implements all three; a PostgreSQL backend goes beside
// it without touching ingest or the gRPC services, each of which takes the narrowest of the three
// it needs. The collector owns one ReportStore (open_report_store.h) and lends out the parts.
//
// Every method is atomic: it either fully happens (and is durable on return) or returns an Error and
// changes nothing. Implementations are thread-safe (callers share one instance across threads).
#pragma once

#include "store/command_store.h"
#include "store/ingest_store.h"
#include "store/query_store.h"

namespace nhiguard::collector {

class ReportStore : public IngestStore, public CommandStore, public QueryStore {};

}  // namespace nhiguard::collector
