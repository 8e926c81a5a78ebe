// The fleet PKI made by `nhiguardctl certs init` and `certs issue`: files, modes, roles in the
// certificates, chains to the CA, a second run keeps everything and only adds what is missing, the
// CA and operator keys are in no directory an agent or the collector reads, an older flat layout is
// still read and is moved into role directories by init, and the offline-CA flow.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/filesystem.h"
#include "pki/fleet_pki.h"
#include "temp_dir.h"

namespace nhiguard::pki {
namespace {

class FleetPkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.dir = (root_.path() / "pki").string();
    options_.hostname = "web-1";
  }

  std::string read(const std::string& name) { return read_text_file(options_.dir + "/" + name).value(); }
  mode_t mode_of(const std::string& name) {
    struct stat st{};
    EXPECT_EQ(::stat((options_.dir + "/" + name).c_str(), &st), 0) << name;
    return st.st_mode & 0777;
  }
  // True when `cert` chains to ca.pem.
  bool verifies(const std::string& cert_pem) {
    auto load = [](const std::string& pem) {
      BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
      X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      return x;
    };
    X509* ca = load(read("ca.pem"));
    X509* leaf = load(cert_pem);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, nullptr);
    const bool ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    X509_free(ca);
    return ok;
  }

  testing::TempDir root_{"nhiguard-pki"};
  InitOptions options_;
};

TEST_F(FleetPkiTest, CreatesEveryRoleWithPrivateKeys) {
  options_.agents = {"web-2"};
  auto report = init_pki(options_);
  ASSERT_TRUE(report) << report.error().message;
  // ca.pem, ca/{ca,ca-key}, and {ca, cert, key} in collector/, agent/, operator/, agents/web-2/.
  EXPECT_EQ(report->created.size(), 15u);
  EXPECT_TRUE(report->kept.empty());
  EXPECT_TRUE(report->moved.empty());
  for (const char* key : {"ca/ca-key.pem", "collector/collector-key.pem", "agent/agent-key.pem",
                          "operator/operator-key.pem", "agents/web-2/agent-key.pem"})
    EXPECT_EQ(mode_of(key), 0600u) << key;
  for (const char* dir : {"", "ca", "collector", "agent", "operator", "agents/web-2"})
    EXPECT_EQ(mode_of(dir), 0700u) << dir;
  EXPECT_EQ(mode_of("ca.pem"), 0644u);

  struct Expect {
    const char* file;
    const char* cn;
    Role role;
  };
  for (const Expect& e :
       {Expect{"collector/collector.pem", "web-1", Role::collector}, Expect{"agent/agent.pem", "web-1", Role::agent},
        Expect{"operator/operator.pem", "operator", Role::operator_},
        Expect{"agents/web-2/agent.pem", "web-2", Role::agent}}) {
    auto identity = read_certificate_identity(read(e.file));
    ASSERT_TRUE(identity) << e.file << ": " << identity.error().message;
    EXPECT_EQ(identity->common_name, e.cn) << e.file;
    EXPECT_EQ(identity->role, e.role) << e.file;
    EXPECT_TRUE(verifies(read(e.file))) << e.file;
  }
  for (const char* copy : {"ca/ca.pem", "collector/ca.pem", "agent/ca.pem", "operator/ca.pem", "agents/web-2/ca.pem"})
    EXPECT_EQ(read(copy), read("ca.pem")) << copy;
  // Readers given the PKI root find their role's directory.
  for (const char* role : {"operator", "agent", "collector"}) {
    auto material = load_tls_material(options_.dir, role);
    ASSERT_TRUE(material) << role << ": " << material.error().message;
    EXPECT_EQ(material->cert_pem, read(std::string(role) + "/" + role + ".pem"));
    EXPECT_EQ(material->key_pem, read(std::string(role) + "/" + role + "-key.pem"));
  }
}

// The finding: the directory the agent (or the collector) is pointed at held ca-key.pem and
// operator-key.pem. Now each role's directory holds exactly the CA certificate and its own pair.
TEST_F(FleetPkiTest, NoServiceDirectoryHoldsTheCaOrAnotherRolesKey) {
  options_.agents = {"web-2"};
  ASSERT_TRUE(init_pki(options_));
  for (const char* role : {"agent", "collector", "operator"}) {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir + "/" + role))
      names.insert(entry.path().filename().string());
    EXPECT_EQ(names, (std::set<std::string>{"ca.pem", std::string(role) + ".pem", std::string(role) + "-key.pem"}))
        << role;
  }
  std::set<std::string> top;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir))
    top.insert(entry.path().filename().string());
  EXPECT_EQ(top, (std::set<std::string>{"ca.pem", "ca", "collector", "agent", "operator", "agents"}));
}

TEST_F(FleetPkiTest, ASecondRunKeepsTheCaAndAddsOnlyTheNewAgent) {
  ASSERT_TRUE(init_pki(options_));
  const std::string ca = read("ca.pem"), agent = read("agent/agent.pem");
  options_.agents = {"db-1"};
  auto again = init_pki(options_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(read("ca.pem"), ca);
  EXPECT_EQ(read("agent/agent.pem"), agent);
  EXPECT_EQ(again->created.size(), 3u);  // agents/db-1/{agent-key,agent,ca}.pem
  EXPECT_TRUE(verifies(read("agents/db-1/agent.pem")));
}

// A directory written before role directories existed (every file flat in DIR): readers take it
// as it is; init moves the files into the new layout without re-issuing anything.
TEST_F(FleetPkiTest, AFlatLayoutIsReadAsItIsAndMovedByInit) {
  ASSERT_TRUE(init_pki(options_));
  const std::string& d = options_.dir;
  namespace fs = std::filesystem;
  fs::rename(d + "/ca/ca-key.pem", d + "/ca-key.pem");
  fs::remove_all(d + "/ca");
  for (const char* role : {"collector", "agent", "operator"}) {
    fs::rename(d + "/" + role + "/" + role + ".pem", d + "/" + role + ".pem");
    fs::rename(d + "/" + role + "/" + role + "-key.pem", d + "/" + role + "-key.pem");
    fs::remove_all(d + "/" + role);
  }
  const std::string agent_cert = read("agent.pem"), agent_key = read("agent-key.pem"), ca_key = read("ca-key.pem");
  for (const char* role : {"operator", "agent", "collector"}) {
    auto material = load_tls_material(d, role);
    ASSERT_TRUE(material) << role << ": " << material.error().message;
    EXPECT_EQ(material->cert_pem, read(std::string(role) + ".pem"));
  }

  auto report = init_pki(options_);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->moved.size(), 7u);  // ca-key, and each role's pair
  EXPECT_FALSE(fs::exists(d + "/ca-key.pem"));
  EXPECT_FALSE(fs::exists(d + "/operator-key.pem"));
  EXPECT_FALSE(fs::exists(d + "/agent-key.pem"));
  EXPECT_EQ(read("ca/ca-key.pem"), ca_key);
  EXPECT_EQ(read("agent/agent.pem"), agent_cert);
  EXPECT_EQ(read("agent/agent-key.pem"), agent_key);
  EXPECT_EQ(mode_of("ca/ca-key.pem"), 0600u);
  auto material = load_tls_material(d, "agent");
  ASSERT_TRUE(material);
  EXPECT_EQ(material->key_pem, agent_key);
}

// An installer may hard-link a flat layout's files into a role directory: init then only drops the
// flat names; two different files under both names are refused, neither touched.
TEST_F(FleetPkiTest, MovingIntoARoleDirectoryKeepsALinkAndRefusesAConflict) {
  ASSERT_TRUE(init_pki(options_));
  const std::string& d = options_.dir;
  namespace fs = std::filesystem;
  fs::create_hard_link(d + "/ca/ca-key.pem", d + "/ca-key.pem");
  auto linked = init_pki(options_);
  ASSERT_TRUE(linked) << linked.error().message;
  EXPECT_FALSE(fs::exists(d + "/ca-key.pem"));
  EXPECT_TRUE(fs::exists(d + "/ca/ca-key.pem"));

  fs::copy_file(d + "/collector/collector-key.pem", d + "/operator-key.pem");
  fs::copy_file(d + "/collector/collector.pem", d + "/operator.pem");
  auto conflict = init_pki(options_);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, EEXIST);
  EXPECT_NE(conflict.error().message.find("operator-key.pem"), std::string::npos) << conflict.error().message;
  EXPECT_TRUE(fs::exists(d + "/operator-key.pem"));
}

// The offline CA: the CA host holds only ca/ and issues each host's directory; a host without the
// CA key cannot issue, and init there says where to issue instead of making a second CA.
TEST_F(FleetPkiTest, OfflineCaIssuesEachRoleAndNoOtherHostCanIssue) {
  options_.ca_only = true;
  auto made = init_pki(options_);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->created.size(), 3u);  // ca/ca-key.pem, ca/ca.pem, ca.pem
  EXPECT_FALSE(std::filesystem::exists(options_.dir + "/agent"));

  struct Case {
    Role role;
    const char* name;
    const char* dir;
  };
  for (const Case& c : {Case{Role::agent, "web-7", "agents/web-7"},
                        Case{Role::collector, "collector.example.net", "collectors/collector.example.net"},
                        Case{Role::operator_, "alice", "operators/alice"}}) {
    auto issued = issue_certificate({.pki_dir = options_.dir,
                                     .role = c.role,
                                     .name = c.name,
                                     .collector_sans = c.role == Role::collector ? std::vector<std::string>{"10.0.0.5"}
                                                                                 : std::vector<std::string>{}});
    ASSERT_TRUE(issued) << c.name << ": " << issued.error().message;
    const std::string base(to_string(c.role));
    auto material = load_tls_material(options_.dir + "/" + c.dir, base);
    ASSERT_TRUE(material) << c.dir << ": " << material.error().message;
    auto identity = read_certificate_identity(material->cert_pem);
    ASSERT_TRUE(identity);
    EXPECT_EQ(identity->common_name, c.name);
    EXPECT_EQ(identity->role, c.role);
    EXPECT_TRUE(verifies(material->cert_pem));
    EXPECT_EQ(material->ca_pem, read("ca.pem"));
    EXPECT_EQ(mode_of(std::string(c.dir) + "/" + base + "-key.pem"), 0600u);
  }
  // Issuing again keeps the certificate.
  auto again = issue_certificate({.pki_dir = options_.dir, .role = Role::agent, .name = "web-7"});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->created.empty());

  // A host that got only its issued directory: no CA key, nothing can be issued or re-made there.
  const std::string host = (root_.path() / "web-7-pki").string();
  std::filesystem::create_directories(host);
  std::filesystem::copy(options_.dir + "/agents/web-7", host + "/agent");
  std::filesystem::copy_file(options_.dir + "/ca.pem", host + "/ca.pem");
  auto refused = issue_certificate({.pki_dir = host, .role = Role::operator_, .name = "mallory"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ENOENT);
  auto no_second_ca = init_pki({.dir = host, .hostname = "web-7"});
  ASSERT_FALSE(no_second_ca);
  EXPECT_NE(no_second_ca.error().message.find("certs issue"), std::string::npos) << no_second_ca.error().message;
  EXPECT_FALSE(std::filesystem::exists(host + "/ca"));
  EXPECT_TRUE(load_tls_material(host, "agent"));

  EXPECT_FALSE(issue_certificate({.pki_dir = options_.dir, .role = Role::agent, .name = "../x"}));
  EXPECT_FALSE(issue_certificate({.pki_dir = options_.dir, .role = Role::agent, .name = "a", .collector_sans = {"b"}}));
}

TEST_F(FleetPkiTest, RefusesNamesThatCannotBeACommonNameAndADirectory) {
  for (const char* bad : {"", "..", "a/b", "web 1", "x\n"}) {
    options_.agents = {bad};
    auto report = init_pki(options_);
    ASSERT_FALSE(report) << bad;
    EXPECT_EQ(report.error().code, EINVAL);
  }
  EXPECT_FALSE(std::filesystem::exists(options_.dir));
}

TEST_F(FleetPkiTest, MissingFilesAreNamed) {
  auto material = load_tls_material(options_.dir, "collector");
  ASSERT_FALSE(material);
  EXPECT_NE(material.error().message.find("ca.pem"), std::string::npos);
  EXPECT_NE(material.error().message.find("certs init"), std::string::npos);
  EXPECT_FALSE(read_certificate_identity("not a certificate"));
}

}  // namespace
}  // namespace nhiguard::pki
