// libFuzzer target: arbitrary bytes as AgentMessages on one agent stream, through the collector's
// whole ingest path: AgentIngest (parse, size limit, protocol rules) and, for every accepted report,
// the SQLite ReportStore (idempotent insert, typed tables, watermark). The input is used twice: as
// the stream's first message (the hello path) and as a message after a valid hello (the report
// path). Nothing may crash, hang, throw or leave the store unable to answer.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "ingest/agent_ingest.h"
#include "store/sqlite_report_store.h"

namespace {

struct FuzzStore {
  FuzzStore() {
    char tmpl[] = "/tmp/nhiguard-fuzz-ingest.XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    dir = tmpl;
    auto opened = nhiguard::collector::SqliteReportStore::open(dir + "/collector.db");
    if (!opened) std::abort();
    store = std::move(*opened);
  }
  ~FuzzStore() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::unique_ptr<nhiguard::collector::SqliteReportStore> store;
};

FuzzStore& fuzz_store() {
  static FuzzStore instance;
  return instance;
}

constexpr int64_t kNow = 1'800'000'000'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nhiguard;
  auto& store = *fuzz_store().store;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  collector::IngestLimits limits;
  limits.max_message_bytes = 1 << 16;

  // As the first message: a hello (or a refusal).
  {
    collector::AgentIngest ingest(store, store, std::nullopt, "fuzz", limits);
    (void)ingest.on_message(bytes, kNow);
  }
  // After a valid hello: a report, stored when accepted.
  collector::AgentIngest ingest(store, store, std::nullopt, "fuzz", limits);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id("fuzz-agent");
  hello.mutable_hello()->set_outbox_id("fuzz-outbox");
  if (!ingest.on_message(hello.SerializeAsString(), kNow)) std::abort();
  auto step = ingest.on_message(bytes, kNow);
  if (step && step->record) {
    std::vector<collector::IngestRecord> batch{std::move(*step->record)};
    auto outcome = store.store_reports(batch);
    if (!outcome) std::abort();  // an accepted report must be storable
  }
  if (!store.list_agents()) std::abort();
  return 0;
}
