// The reporter's durable outbox: sequence numbers (consecutive, never reused, across reopen),
// acknowledgement, marks written atomically with reports, bounded size with drop markers that keep
// the sequence gap-free and count every drop, in-flight protection, damaged files, and concurrent
// use from the event loop and the reporter thread.
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/ulid.h"
#include "reporter/outbox.h"
#include "sqlite_side_connection.h"
#include "temp_dir.h"

namespace nhiguard::reporter {
namespace {

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (root_ / "state" / "outbox.db").string();  // "state" does not exist yet
  }

  std::unique_ptr<Outbox> open_outbox(uint64_t max_bytes = 1 << 20) {
    auto outbox = Outbox::open({.path = path_, .max_bytes = max_bytes});
    EXPECT_TRUE(outbox) << outbox.error().message;
    return outbox ? std::move(*outbox) : nullptr;
  }

  static Report event(std::string type, size_t payload_bytes = 100, bool droppable = true) {
    Report r;
    r.kind = ReportKind::event;
    r.type = std::move(type);
    r.payload = nlohmann::json{{"type", r.type}, {"pad", std::string(payload_bytes, 'x')}}.dump();
    r.droppable = droppable;
    r.event_boot_ns = 123;
    r.event_wall_ns = 456;
    return r;
  }
  static Report action(size_t payload_bytes = 100) {
    Report r = event("action", payload_bytes, false);
    r.kind = ReportKind::action_update;
    return r;
  }

  // Every stored row, oldest first (taking them marks them in flight; tests release afterwards).
  static std::vector<StoredReport> all(Outbox& outbox) {
    auto rows = outbox.take_for_send(0, 1'000'000, SIZE_MAX);
    EXPECT_TRUE(rows) << rows.error().message;
    outbox.release_in_flight();
    return rows ? *rows : std::vector<StoredReport>{};
  }

  // The rows must cover (acked, last] exactly, each sequence once.
  static void expect_gap_free(Outbox& outbox) {
    const auto stats = outbox.stats();
    uint64_t next = stats.acked_seq + 1;
    for (const auto& row : all(outbox)) {
      EXPECT_EQ(row.seq, next) << "gap or overlap before sequence " << row.seq;
      EXPECT_GE(row.seq_end, row.seq);
      next = row.seq_end + 1;
    }
    EXPECT_EQ(next, stats.last_seq + 1);
  }

  std::string execute(const std::string& sql) const { return test_support::execute_sql(path_, sql); }

  testing::TempDir tmp_{"nhiguard-outbox"};
  const std::filesystem::path root_ = tmp_.path();
  std::string path_;
};

TEST_F(OutboxTest, NewFileIsPrivateWalWithAStreamId) {
  auto outbox = open_outbox();
  ASSERT_TRUE(outbox);
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat((root_ / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  const auto stats = outbox->stats();
  EXPECT_TRUE(is_ulid(stats.stream_id)) << stats.stream_id;
  EXPECT_EQ(stats.last_seq, 0u);
  EXPECT_EQ(stats.acked_seq, 0u);
  EXPECT_EQ(stats.rows, 0u);
}

TEST_F(OutboxTest, ReportsGetConsecutiveSequencesAndRoundTrip) {
  auto outbox = open_outbox();
  std::vector<Report> batch = {event("credential_access"), action(), event("egress")};
  batch[1].event_boot_ns = 99;
  auto appended = outbox->append(batch);
  ASSERT_TRUE(appended) << appended.error().message;
  EXPECT_EQ(appended->first, 1u);
  EXPECT_EQ(appended->last, 3u);
  auto more = outbox->append(std::vector<Report>{event("egress")});
  ASSERT_TRUE(more);
  EXPECT_EQ(more->first, 4u);

  auto rows = all(*outbox);
  ASSERT_EQ(rows.size(), 4u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].seq, i + 1);
    EXPECT_EQ(rows[i].seq_end, i + 1);
    EXPECT_GT(rows[i].stored_wall_ns, 0);
  }
  EXPECT_EQ(rows[1].report.kind, ReportKind::action_update);
  EXPECT_EQ(rows[1].report.type, "action");
  EXPECT_EQ(rows[1].report.payload, batch[1].payload);
  EXPECT_EQ(rows[1].report.event_boot_ns, 99u);
  EXPECT_EQ(rows[1].report.event_wall_ns, 456);
  EXPECT_FALSE(rows[1].report.droppable);
  EXPECT_TRUE(rows[0].report.droppable);
}

TEST_F(OutboxTest, TakeForSendPagesByCountAndBytes) {
  auto outbox = open_outbox();
  std::vector<Report> batch(10, event("egress", 1000));
  ASSERT_TRUE(outbox->append(batch));
  auto first = outbox->take_for_send(0, 3, SIZE_MAX);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ(first->back().seq, 3u);
  EXPECT_EQ(outbox->stats().in_flight_through, 3u);
  auto next = outbox->take_for_send(3, 100, 2500);  // stops once 2500 payload bytes are reached
  ASSERT_TRUE(next);
  ASSERT_EQ(next->size(), 3u);
  EXPECT_EQ(next->front().seq, 4u);
  auto tiny = outbox->take_for_send(6, 100, 1);  // always at least one
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->size(), 1u);
  auto none = outbox->take_for_send(10, 100, SIZE_MAX);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(OutboxTest, AcknowledgeDeletesThroughTheSequenceOnly) {
  auto outbox = open_outbox();
  ASSERT_TRUE(outbox->append(std::vector<Report>(5, event("egress"))));
  ASSERT_TRUE(outbox->acknowledge(3));
  auto rows = all(*outbox);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].seq, 4u);
  EXPECT_EQ(outbox->stats().acked_seq, 3u);
  EXPECT_EQ(outbox->stats().rows, 2u);

  EXPECT_TRUE(outbox->acknowledge(2));  // late ack: nothing changes
  EXPECT_EQ(outbox->stats().acked_seq, 3u);
  EXPECT_EQ(all(*outbox).size(), 2u);

  auto beyond = outbox->acknowledge(6);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code, EINVAL);
  EXPECT_NE(beyond.error().message.find("beyond the last sequence written (5)"), std::string::npos)
      << beyond.error().message;
  EXPECT_EQ(all(*outbox).size(), 2u);
}

TEST_F(OutboxTest, SequencesAreNeverReusedAfterAckAndReopen) {
  std::string stream;
  {
    auto outbox = open_outbox();
    stream = outbox->stats().stream_id;
    ASSERT_TRUE(outbox->append(std::vector<Report>(4, event("egress"))));
    ASSERT_TRUE(outbox->acknowledge(4));  // everything acknowledged: no rows left
    EXPECT_EQ(outbox->stats().rows, 0u);
  }
  auto outbox = open_outbox();
  EXPECT_EQ(outbox->stats().stream_id, stream);
  EXPECT_EQ(outbox->stats().last_seq, 4u);
  auto appended = outbox->append(std::vector<Report>{action()});
  ASSERT_TRUE(appended);
  EXPECT_EQ(appended->first, 5u);
}

TEST_F(OutboxTest, UnacknowledgedReportsSurviveReopen) {
  {
    auto outbox = open_outbox();
    ASSERT_TRUE(outbox->append(std::vector<Report>(6, event("credential_access"))));
    ASSERT_TRUE(outbox->take_for_send(0, 6, SIZE_MAX));  // sent, then the agent died before the ack
    ASSERT_TRUE(outbox->acknowledge(2));
  }
  auto outbox = open_outbox();
  const auto stats = outbox->stats();
  EXPECT_EQ(stats.acked_seq, 2u);
  EXPECT_EQ(stats.in_flight_through, 0u);  // a new process has nothing on the wire
  auto rows = outbox->take_for_send(stats.acked_seq, 100, SIZE_MAX);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ(rows->front().seq, 3u);
  expect_gap_free(*outbox);
}

TEST_F(OutboxTest, MarksAreWrittenWithTheReports) {
  auto outbox = open_outbox();
  EXPECT_EQ(*outbox->mark("ledger_history"), 0);
  std::vector<std::pair<std::string, int64_t>> marks = {{"ledger_history", 41}};
  ASSERT_TRUE(outbox->append(std::vector<Report>{action()}, marks));
  EXPECT_EQ(*outbox->mark("ledger_history"), 41);
  outbox.reset();
  outbox = open_outbox();
  EXPECT_EQ(*outbox->mark("ledger_history"), 41);
}

TEST_F(OutboxTest, FailedAppendWritesNothingAndUsesNoSequence) {
  auto outbox = open_outbox();
  ASSERT_TRUE(outbox->append(std::vector<Report>{event("egress")}));
  ASSERT_EQ(execute("CREATE TRIGGER fail_meta BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'injected write "
                    "failure'); END"),
            "");
  std::vector<std::pair<std::string, int64_t>> marks = {{"ledger_history", 7}};
  auto appended = outbox->append(std::vector<Report>{action(), action()}, marks);
  ASSERT_FALSE(appended);
  EXPECT_NE(appended.error().message.find("outbox append of 2 report(s)"), std::string::npos)
      << appended.error().message;
  EXPECT_NE(appended.error().message.find("injected write failure"), std::string::npos);
  EXPECT_EQ(outbox->stats().last_seq, 1u);
  EXPECT_EQ(outbox->stats().rows, 1u);
  EXPECT_EQ(*outbox->mark("ledger_history"), 0);

  ASSERT_EQ(execute("DROP TRIGGER fail_meta"), "");
  auto retried = outbox->append(std::vector<Report>{action()});
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->first, 2u);  // the failed append used no number
  expect_gap_free(*outbox);
}

TEST_F(OutboxTest, RefusesDropMarkersFromProducers) {
  auto outbox = open_outbox();
  Report forged = event("reports_dropped");
  forged.kind = ReportKind::dropped;
  auto appended = outbox->append(std::vector<Report>{forged});
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().code, EINVAL);
  EXPECT_EQ(outbox->stats().last_seq, 0u);
}

TEST_F(OutboxTest, FullOutboxDropsOldestLowValueIntoACountedMarker) {
  // Room for about ten 1000-byte reports.
  const uint64_t max = 10 * (1000 + 40 + Outbox::kRowOverheadBytes);
  auto outbox = open_outbox(max);
  ASSERT_TRUE(outbox->append(std::vector<Report>{action(1000)}));                         // 1
  ASSERT_TRUE(outbox->append(std::vector<Report>(4, event("egress", 1000))));             // 2..5
  ASSERT_TRUE(outbox->append(std::vector<Report>(4, event("credential_access", 1000))));  // 6..9
  EXPECT_EQ(outbox->stats().dropped_total, 0u);

  // Three more: the outbox must drop the oldest droppable ones (2, 3, ...), never the action.
  auto appended = outbox->append(std::vector<Report>{action(1000), action(1000), event("egress", 1000)});
  ASSERT_TRUE(appended) << appended.error().message;
  EXPECT_GT(appended->dropped, 0u);
  const auto stats = outbox->stats();
  EXPECT_EQ(stats.dropped_total, appended->dropped);
  EXPECT_LE(stats.bytes, max);
  EXPECT_FALSE(stats.over_capacity);
  expect_gap_free(*outbox);

  auto rows = all(*outbox);
  ASSERT_GE(rows.size(), 3u);
  EXPECT_EQ(rows[0].seq, 1u);
  EXPECT_EQ(rows[0].report.kind, ReportKind::action_update);  // the action is kept
  ASSERT_EQ(rows[1].report.kind, ReportKind::dropped);
  EXPECT_EQ(rows[1].seq, 2u);
  EXPECT_EQ(rows[1].seq_end, 1 + appended->dropped);  // one marker for the run 2..
  auto marker = nlohmann::json::parse(rows[1].report.payload);
  EXPECT_EQ(marker["type"], "reports_dropped");
  EXPECT_EQ(marker["reason"], "outbox full");
  EXPECT_EQ(marker["count"], appended->dropped);
  EXPECT_EQ(marker["first_seq"], 2);
  EXPECT_EQ(marker["last_seq"], rows[1].seq_end);
  uint64_t by_type = 0;
  for (const auto& [type, count] : marker["by_type"].items()) by_type += count.get<uint64_t>();
  EXPECT_EQ(by_type, appended->dropped);
  EXPECT_EQ(marker["by_type"]["egress"], std::min<uint64_t>(4, appended->dropped));
  // Every action is still there.
  size_t actions = 0;
  for (const auto& row : rows) actions += row.report.kind == ReportKind::action_update;
  EXPECT_EQ(actions, 3u);
}

TEST_F(OutboxTest, UndroppableReportsAreKeptBeyondTheBound) {
  const uint64_t max = 3 * (1000 + 40 + Outbox::kRowOverheadBytes);
  auto outbox = open_outbox(max);
  ASSERT_TRUE(outbox->append(std::vector<Report>(5, action(1000))));
  auto stats = outbox->stats();
  EXPECT_EQ(stats.rows, 5u);
  EXPECT_TRUE(stats.over_capacity);
  EXPECT_EQ(stats.dropped_total, 0u);

  // A low-value report that finds no room is dropped itself; the next ones join its marker.
  auto appended = outbox->append(std::vector<Report>{event("egress"), event("egress"), event("credential_access")});
  ASSERT_TRUE(appended);
  EXPECT_EQ(appended->first, 6u);
  EXPECT_EQ(appended->last, 8u);
  EXPECT_EQ(appended->dropped, 3u);
  auto rows = all(*outbox);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[5].report.kind, ReportKind::dropped);
  EXPECT_EQ(rows[5].seq, 6u);
  EXPECT_EQ(rows[5].seq_end, 8u);
  auto marker = nlohmann::json::parse(rows[5].report.payload);
  EXPECT_EQ(marker["count"], 3);
  EXPECT_EQ(marker["by_type"]["egress"], 2);
  EXPECT_EQ(marker["by_type"]["credential_access"], 1);
  EXPECT_EQ(outbox->stats().dropped_total, 3u);
  expect_gap_free(*outbox);

  // The accounting survives a reopen.
  outbox.reset();
  outbox = open_outbox(max);
  EXPECT_TRUE(outbox->stats().over_capacity);
  EXPECT_EQ(outbox->stats().rows, 6u);

  // Acknowledging the actions and the marker frees the room: new reports are stored again.
  ASSERT_TRUE(outbox->acknowledge(8));
  EXPECT_FALSE(outbox->stats().over_capacity);
  auto stored = outbox->append(std::vector<Report>{event("egress")});
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->dropped, 0u);
  EXPECT_EQ(all(*outbox).front().report.kind, ReportKind::event);
}

TEST_F(OutboxTest, InFlightReportsAreNotEvicted) {
  const uint64_t max = 6 * (1000 + 40 + Outbox::kRowOverheadBytes);
  auto outbox = open_outbox(max);
  ASSERT_TRUE(outbox->append(std::vector<Report>(5, event("egress", 1000))));     // 1..5
  ASSERT_TRUE(outbox->take_for_send(0, 3, SIZE_MAX));                             // 1..3 on the wire
  auto appended = outbox->append(std::vector<Report>(3, event("egress", 1000)));  // 6..8
  ASSERT_TRUE(appended);
  EXPECT_GT(appended->dropped, 0u);
  auto rows = outbox->take_for_send(0, 100, SIZE_MAX);
  ASSERT_TRUE(rows);
  ASSERT_GE(rows->size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*rows)[i].report.kind, ReportKind::event) << "in-flight report " << i + 1 << " was evicted";
  }
  EXPECT_EQ((*rows)[3].report.kind, ReportKind::dropped);
  EXPECT_EQ((*rows)[3].seq, 4u);
  outbox->release_in_flight();
  expect_gap_free(*outbox);
}

TEST_F(OutboxTest, MarkersMergeAcrossEvictionRoundsAndReopen) {
  const uint64_t max = 5 * (200 + 40 + Outbox::kRowOverheadBytes);
  {
    auto outbox = open_outbox(max);
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(outbox->append(std::vector<Report>{event("egress", 200)}));
    expect_gap_free(*outbox);
  }
  auto outbox = open_outbox(max);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(outbox->append(std::vector<Report>{event("credential_access", 200)}));
  expect_gap_free(*outbox);
  const auto stats = outbox->stats();
  EXPECT_LE(stats.bytes, max);
  auto rows = all(*outbox);
  // Only the first row is a marker: each round's run joined it.
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front().report.kind, ReportKind::dropped);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i].report.kind, ReportKind::event);
  auto marker = nlohmann::json::parse(rows.front().report.payload);
  EXPECT_EQ(marker["count"].get<uint64_t>(), rows.front().seq_end - rows.front().seq + 1);
  EXPECT_EQ(marker["count"].get<uint64_t>(), stats.dropped_total);
  EXPECT_EQ(marker["by_type"]["egress"], 40);
  EXPECT_EQ(stats.dropped_total + rows.size() - 1, 80u);
}

TEST_F(OutboxTest, ActionsSplitDropRunsIntoSeparateMarkers) {
  const uint64_t row = 1000 + 40 + Outbox::kRowOverheadBytes;
  auto outbox = open_outbox(8 * row);
  // 1 2 A 4 5 A 7: low-value runs broken by actions.
  ASSERT_TRUE(outbox->append(std::vector<Report>{event("egress", 1000), event("egress", 1000), action(1000),
                                                 event("egress", 1000), event("egress", 1000), action(1000),
                                                 event("egress", 1000)}));
  ASSERT_TRUE(outbox->take_for_send(0, 2, SIZE_MAX));  // 1 and 2 are on the wire
  // Room for about two more: 4, 5 and 7 go (two runs, two markers), never 1 and 2, never an action.
  ASSERT_TRUE(outbox->append(std::vector<Report>(3, action(1000))));
  auto rows = all(*outbox);  // (releases the in-flight rows afterwards)
  std::vector<std::pair<uint64_t, uint64_t>> markers;
  for (const auto& r : rows) {
    if (r.report.kind == ReportKind::dropped) markers.emplace_back(r.seq, r.seq_end);
  }
  ASSERT_EQ(markers.size(), 2u);
  EXPECT_EQ(markers[0], std::make_pair(uint64_t{4}, uint64_t{5}));
  EXPECT_EQ(markers[1], std::make_pair(uint64_t{7}, uint64_t{7}));
  EXPECT_EQ(rows[0].report.kind, ReportKind::event);
  EXPECT_EQ(rows[1].report.kind, ReportKind::event);
  expect_gap_free(*outbox);

  // After a disconnect 1 and 2 may go too; no room is left otherwise, so they are dropped, and the
  // run [1, 2] is not adjacent to a marker (3 is an action): a third marker.
  ASSERT_TRUE(outbox->append(std::vector<Report>{action(1000)}));
  rows = all(*outbox);
  ASSERT_EQ(rows[0].report.kind, ReportKind::dropped);
  EXPECT_EQ(rows[0].seq, 1u);
  EXPECT_EQ(rows[0].seq_end, 2u);
  EXPECT_EQ(outbox->stats().dropped_total, 5u);
  size_t actions = 0;
  for (const auto& r : rows) actions += r.report.kind == ReportKind::action_update;
  EXPECT_EQ(actions, 6u);
  expect_gap_free(*outbox);
}

TEST_F(OutboxTest, ARunJustBeforeAMarkerJoinsIt) {
  const uint64_t row = 1000 + 40 + Outbox::kRowOverheadBytes;
  auto outbox = open_outbox(6 * row);
  ASSERT_TRUE(outbox->append(std::vector<Report>(5, event("egress", 1000))));  // 1..5
  ASSERT_TRUE(outbox->take_for_send(0, 2, SIZE_MAX));                          // 1, 2 in flight
  ASSERT_TRUE(outbox->append(std::vector<Report>(2, action(1000))));           // 3.. become a marker
  outbox->release_in_flight();
  ASSERT_TRUE(outbox->append(std::vector<Report>(2, action(1000))));  // 1, 2 join it
  auto rows = all(*outbox);
  ASSERT_EQ(rows[0].report.kind, ReportKind::dropped);
  EXPECT_EQ(rows[0].seq, 1u);
  EXPECT_GE(rows[0].seq_end, 4u);
  auto marker = nlohmann::json::parse(rows[0].report.payload);
  EXPECT_EQ(marker["count"].get<uint64_t>(), rows[0].seq_end);
  EXPECT_EQ(marker["first_seq"], 1);
  expect_gap_free(*outbox);
}

TEST_F(OutboxTest, InconsistentFileIsRefused) {
  {
    auto outbox = open_outbox();
    ASSERT_TRUE(outbox->append(std::vector<Report>(3, event("egress"))));
  }
  ASSERT_EQ(execute("DELETE FROM reports WHERE seq = 1"), "");  // a hole at the front
  auto reopened = Outbox::open({.path = path_});
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code, EUCLEAN);
  EXPECT_NE(reopened.error().message.find("move it aside"), std::string::npos) << reopened.error().message;
}

TEST_F(OutboxTest, NotADatabaseIsRefused) {
  std::filesystem::create_directories(root_ / "state");
  {
    std::FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not an SQLite database, it is long enough to have a header that SQLite reads and rejects", f);
    std::fclose(f);
  }
  auto opened = Outbox::open({.path = path_});
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, EUCLEAN) << opened.error().message;
  EXPECT_NE(opened.error().message.find("open outbox " + path_), std::string::npos) << opened.error().message;
}

TEST_F(OutboxTest, ConcurrentAppendSendAndAcknowledge) {
  auto outbox = open_outbox(64 << 10);  // small: eviction runs while the sender works
  constexpr int kBatches = 300;
  std::atomic<bool> done = false;
  std::thread producer([&] {
    for (int i = 0; i < kBatches; ++i) {
      std::vector<Report> batch = {event("egress", 300), action(300)};
      auto appended = outbox->append(batch);
      ASSERT_TRUE(appended) << appended.error().message;
    }
    done = true;
  });
  uint64_t acked = 0;
  uint64_t actions_seen = 0;
  uint64_t covered = 0;
  for (;;) {
    const bool finished = done.load();
    auto rows = outbox->take_for_send(acked, 50, SIZE_MAX);
    ASSERT_TRUE(rows) << rows.error().message;
    for (const auto& row : *rows) {
      ASSERT_EQ(row.seq, acked + 1) << "sequence gap while sending";
      acked = row.seq_end;
      covered += row.seq_end - row.seq + 1;
      actions_seen += row.report.kind == ReportKind::action_update;
    }
    if (!rows->empty()) {
      ASSERT_TRUE(outbox->acknowledge(acked));
    }
    if (finished && rows->empty()) break;
  }
  producer.join();
  EXPECT_EQ(covered, 2u * kBatches);
  EXPECT_EQ(actions_seen, static_cast<uint64_t>(kBatches));  // no action was dropped
  EXPECT_EQ(outbox->stats().rows, 0u);
  EXPECT_EQ(outbox->stats().bytes, 0u);
}

}  // namespace
}  // namespace nhiguard::reporter
