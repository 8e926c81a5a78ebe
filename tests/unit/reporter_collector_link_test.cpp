// The reporter thread against the real collector core (in process, on loopback, mTLS with a PKI
// from init_pki), without root: everything written to the outbox arrives exactly once, across a
// collector that goes away and comes back on the same port; the outbox is emptied only by acks;
// a collector's set_mode command runs through the handler and its result is stored at the
// collector; a new agent is told the fleet mode in its Welcome; a collector of another fleet
// (another CA) is refused and nothing leaves the outbox; a server of this fleet whose certificate
// is an agent's or an operator's is refused before the Hello, with a log line.
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "nhiguard/v1/operator.grpc.pb.h"
#include "pki/collector_channel.h"
#include "pki/fleet_pki.h"
#include "reporter/collector_link.h"
#include "reporter/outbox.h"
#include "reporter/wire_records.h"
#include "server/collector_server.h"
#include "temp_dir.h"

namespace nhiguard::reporter {
namespace {

using namespace std::chrono_literals;

// Records what the link asked of the agent; set_mode changes the mode as the daemon would.
class RecordingHandler : public CommandHandler {
 public:
  config::AgentMode current_mode() override {
    std::lock_guard lock(mutex_);
    return mode_;
  }
  v1::CommandResult execute(const v1::Command& command) override {
    std::lock_guard lock(mutex_);
    executed_.push_back(command.command_id());
    v1::CommandResult result;
    if (auto mode = command.has_set_mode() ? mode_from_wire(command.set_mode().mode()) : std::nullopt) {
      mode_ = *mode;
      result.set_status(v1::CommandResult::STATUS_OK);
    } else {
      result.set_status(v1::CommandResult::STATUS_INVALID);
    }
    result.set_mode(mode_to_wire(mode_));
    return result;
  }
  void apply_required_mode(std::optional<config::AgentMode> mode) override {
    std::lock_guard lock(mutex_);
    ++welcomes_;
    required_ = mode;
    if (mode) mode_ = *mode;
  }
  size_t executed() {
    std::lock_guard lock(mutex_);
    return executed_.size();
  }
  std::optional<config::AgentMode> required() {
    std::lock_guard lock(mutex_);
    return required_;
  }
  int welcomes() {
    std::lock_guard lock(mutex_);
    return welcomes_;
  }

 private:
  std::mutex mutex_;
  config::AgentMode mode_ = config::AgentMode::policy;
  std::vector<std::string> executed_;
  std::optional<config::AgentMode> required_;
  int welcomes_ = 0;
};

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// A server directory (ca.pem, collector.pem, collector-key.pem) whose certificate the TLS layer
// accepts for 127.0.0.1 (signed by the fleet CA of `pki_dir`, serverAuth, SAN 127.0.0.1) but whose
// role (OU) is `role`: what an agent's or an operator's key could present if the CA signed it so.
bool make_server_dir_with_role(const std::string& pki_dir, const std::string& out_dir, const std::string& role) {
  std::string ca_key_path;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(pki_dir)) {
    if (entry.path().filename() == "ca-key.pem") ca_key_path = entry.path().string();
  }
  auto read_pem = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string ca_pem = read_pem(pki_dir + "/ca.pem");
  const std::string ca_key_pem = read_pem(ca_key_path);
  BIO* ca_bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  BIO* key_bio = BIO_new_mem_buf(ca_key_pem.data(), static_cast<int>(ca_key_pem.size()));
  X509* ca = PEM_read_bio_X509(ca_bio, nullptr, nullptr, nullptr);
  EVP_PKEY* ca_key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(ca_bio);
  BIO_free(key_bio);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = ca && ca_key && key && cert;
  if (ok) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 4242);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    const std::string cn = "rogue-" + role;
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("nhiguard"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(role.c_str()), -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(ca));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca, cert, nullptr, nullptr, 0);
    for (auto [nid, value] :
         {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, std::pair{NID_ext_key_usage, "serverAuth"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      ok = ok && ext && X509_add_ext(cert, ext, -1) == 1;
      X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(cert, ca_key, EVP_sha256()) > 0;
  }
  std::filesystem::create_directories(out_dir);
  std::filesystem::copy_file(pki_dir + "/ca.pem", out_dir + "/ca.pem");
  FILE* cert_file = std::fopen((out_dir + "/collector.pem").c_str(), "w");
  FILE* key_file = std::fopen((out_dir + "/collector-key.pem").c_str(), "w");
  ok = ok && cert_file && key_file && PEM_write_X509(cert_file, cert) == 1 &&
       PEM_write_PrivateKey(key_file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (cert_file) std::fclose(cert_file);
  if (key_file) std::fclose(key_file);
  X509_free(cert);
  X509_free(ca);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
  return ok;
}

class CollectorLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki::init_pki({.dir = pki_dir_, .hostname = "link-test-agent"}));
    auto outbox = Outbox::open({.path = (tmp_.path() / "outbox.db").string()});
    ASSERT_TRUE(outbox) << outbox.error().message;
    outbox_ = std::move(*outbox);
    start_collector("127.0.0.1:0");
  }
  void TearDown() override {
    if (link_) link_->stop();
    if (collector_) collector_->shutdown(100ms);
  }

  void start_collector(const std::string& listen) {
    auto server =
        collector::CollectorServer::start({.listen = listen, .db_url = "sqlite:" + db_path_, .pki_dir = pki_dir_});
    ASSERT_TRUE(server) << server.error().message;
    collector_ = std::move(*server);
    port_ = collector_->port();
  }
  std::unique_ptr<CollectorLink> make_link(Outbox& outbox, const std::string& pki_dir) {
    return std::make_unique<CollectorLink>(CollectorLinkOptions{.address = "127.0.0.1:" + std::to_string(port_),
                                                                .pki_dir = pki_dir,
                                                                .hostname = "link-test-host",
                                                                .trust_domain = "test.local",
                                                                .initial_backoff = 50ms,
                                                                .max_backoff = 200ms,
                                                                .connect_timeout = 2s},
                                           outbox, handler_);
  }
  void append_alerts(int count) {
    std::vector<Report> batch;
    for (int i = 0; i < count; ++i) batch.push_back(alert_report("test", "report " + std::to_string(i), 1));
    ASSERT_TRUE(outbox_->append(batch));
    if (link_) link_->notify();
  }
  bool all_acked() {
    const auto s = outbox_->stats();
    return s.acked_seq == s.last_seq && s.rows == 0;
  }
  // (rows, distinct sequences, max sequence) the collector stored for the outbox.
  std::tuple<int64_t, int64_t, int64_t> stored() {
    sqlite3* db = nullptr;
    std::tuple<int64_t, int64_t, int64_t> out{-1, -1, -1};
    if (sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      const std::string sql =
          "SELECT count(*), count(DISTINCT sequence), coalesce(max(sequence), 0) FROM reports "
          "WHERE outbox_id = '" +
          outbox_->stats().stream_id + "'";
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        out = {sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1), sqlite3_column_int64(stmt, 2)};
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }
  std::string state() { return link_->status()["state"].get<std::string>(); }

  testing::TempDir tmp_{"nhiguard-link"};
  const std::string pki_dir_ = (tmp_.path() / "pki").string();
  const std::string db_path_ = (tmp_.path() / "collector.db").string();
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<collector::CollectorServer> collector_;
  int port_ = 0;
  RecordingHandler handler_;
  std::unique_ptr<CollectorLink> link_;
};

TEST_F(CollectorLinkTest, EveryReportArrivesOnceAcrossACollectorRestart) {
  append_alerts(100);
  link_ = make_link(*outbox_, pki_dir_);
  link_->start();
  ASSERT_TRUE(eventually([&] { return all_acked(); })) << link_->status().dump();
  EXPECT_EQ(state(), "connected");
  EXPECT_EQ(link_->status()["agent_id"], "link-test-agent") << "the agent id is the certificate's CN";
  EXPECT_EQ(stored(), std::make_tuple(int64_t{100}, int64_t{100}, int64_t{100}));

  // The collector goes away: reports stay in the outbox, the status says why.
  collector_->shutdown(100ms);
  collector_.reset();
  append_alerts(50);
  ASSERT_TRUE(eventually([&] { return state() == "waiting"; })) << link_->status().dump();
  EXPECT_FALSE(link_->status()["last_error"].get<std::string>().empty());
  EXPECT_EQ(outbox_->stats().last_seq - outbox_->stats().acked_seq, 50u);

  // Back on the same port with the same database: the link resumes and nothing is stored twice.
  start_collector("127.0.0.1:" + std::to_string(port_));
  ASSERT_TRUE(eventually([&] { return all_acked(); })) << link_->status().dump();
  EXPECT_EQ(stored(), std::make_tuple(int64_t{150}, int64_t{150}, int64_t{150}));
  EXPECT_GE(handler_.welcomes(), 2);
}

TEST_F(CollectorLinkTest, ModeCommandRunsAndAWelcomeCarriesTheFleetMode) {
  link_ = make_link(*outbox_, pki_dir_);
  link_->start();
  ASSERT_TRUE(eventually([&] { return state() == "connected"; })) << link_->status().dump();

  // An operator turns the kill switch on, through the collector's operator API.
  auto operator_tls = pki::load_tls_material(pki_dir_, "operator");
  ASSERT_TRUE(operator_tls);
  auto stub = v1::OperatorService::NewStub(
      pki::collector_channel("127.0.0.1:" + std::to_string(port_), {.tls = std::move(*operator_tls)}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::SetModeRequest request;
  request.set_mode(v1::MODE_OBSERVE);
  request.set_all(true);
  v1::SetModeResponse response;
  ASSERT_TRUE(stub->SetMode(&context, request, &response).ok());
  ASSERT_EQ(response.commands_size(), 1);
  const std::string command_id = response.commands(0).command_id();

  ASSERT_TRUE(eventually([&] { return handler_.current_mode() == config::AgentMode::observe; }));
  EXPECT_EQ(handler_.executed(), 1u);
  // The result went through the outbox and is stored at the collector: the command is done.
  ASSERT_TRUE(eventually([&] {
    grpc::ClientContext ask;
    ask.set_deadline(std::chrono::system_clock::now() + 2s);
    v1::GetCommandRequest get;
    get.set_command_id(command_id);
    v1::CommandStatus status;
    return stub->GetCommand(&ask, get, &status).ok() && status.state() == v1::COMMAND_STATE_DONE &&
           status.result().mode() == v1::MODE_OBSERVE;
  }));
  EXPECT_TRUE(eventually([&] { return all_acked(); }));

  // A new agent (another outbox) is told the fleet mode when it connects.
  auto other_outbox = Outbox::open({.path = (tmp_.path() / "other-outbox.db").string()});
  ASSERT_TRUE(other_outbox);
  RecordingHandler other_handler;
  CollectorLink other(
      CollectorLinkOptions{.address = "127.0.0.1:" + std::to_string(port_), .pki_dir = pki_dir_, .hostname = "other"},
      **other_outbox, other_handler);
  other.start();
  ASSERT_TRUE(other.await_first_answer(10s));
  EXPECT_EQ(other_handler.required(), config::AgentMode::observe) << "in force as soon as the first answer came";
  other.stop();
}

TEST_F(CollectorLinkTest, ACollectorOfAnotherFleetIsRefusedAndNothingLeavesTheOutbox) {
  const std::string other_fleet = (tmp_.path() / "other-pki").string();
  ASSERT_TRUE(pki::init_pki({.dir = other_fleet, .hostname = "link-test-agent"}));
  append_alerts(5);
  link_ = make_link(*outbox_, other_fleet);
  link_->start();
  EXPECT_FALSE(link_->await_first_answer(10s)) << "the first attempt failed: no Welcome";
  ASSERT_TRUE(eventually([&] { return state() == "waiting"; })) << link_->status().dump();
  const std::string error = link_->status()["last_error"];
  EXPECT_NE(error.find("cannot connect"), std::string::npos) << error;
  EXPECT_EQ(outbox_->stats().rows, 5u);
  EXPECT_EQ(std::get<0>(stored()), 0);

  // A missing PKI directory is named in the error.
  const std::string missing = (tmp_.path() / "no-pki").string();
  link_->stop();
  link_ = make_link(*outbox_, missing);
  link_->start();
  ASSERT_TRUE(eventually([&] { return !link_->status()["last_error"].get<std::string>().empty(); }));
  EXPECT_NE(link_->status()["last_error"].get<std::string>().find("collector.pki " + missing), std::string::npos)
      << link_->status().dump();
}

TEST_F(CollectorLinkTest, AServerOfThisFleetThatIsNotTheCollectorIsRefusedBeforeTheHello) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  append_alerts(3);
  for (const std::string role : {"agent", "operator"}) {
    const std::string dir = (tmp_.path() / ("rogue-" + role)).string();
    ASSERT_TRUE(make_server_dir_with_role(pki_dir_, dir, role));
    const std::string rogue_db = (tmp_.path() / ("rogue-" + role + ".db")).string();
    auto rogue =
        collector::CollectorServer::start({.listen = "127.0.0.1:0", .db_url = "sqlite:" + rogue_db, .pki_dir = dir});
    ASSERT_TRUE(rogue) << rogue.error().message;
    port_ = (*rogue)->port();
    link_ = make_link(*outbox_, pki_dir_);
    link_->start();
    EXPECT_FALSE(link_->await_first_answer(10s)) << role;
    ASSERT_TRUE(eventually([&] { return state() == "waiting"; })) << link_->status().dump();
    const std::string error = link_->status()["last_error"];
    EXPECT_NE(error.find("refused the server, nothing was sent"), std::string::npos) << error;
    EXPECT_NE(error.find("for role '" + role + "' (CN rogue-" + role + "), not 'collector'"), std::string::npos)
        << error;
    link_->stop();
    link_.reset();
    // The Hello never went out: the impostor knows no agent and holds no report.
    EXPECT_TRUE((*rogue)->stats().stored == 0);
    (*rogue)->shutdown(100ms);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(rogue_db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM agents", -1, &stmt, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int64(stmt, 0), 0) << role;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    EXPECT_EQ(outbox_->stats().rows, 3u);
  }
  spdlog::default_logger()->sinks().pop_back();
  EXPECT_NE(log.str().find("refused the server, nothing was sent: 127.0.0.1:"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace nhiguard::reporter
