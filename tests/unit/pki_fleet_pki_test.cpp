// The fleet PKI made by `nhiguardctl certs init`: files, modes, roles in the certificates, chains to
// the CA, and that a second run keeps everything and only adds what is missing.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "identity/mountinfo.h"
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

  std::string read(const std::string& name) { return identity::read_text_file(options_.dir + "/" + name).value(); }
  mode_t mode_of(const std::string& name) {
    struct stat st {};
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
  EXPECT_EQ(report->created.size(), 11u);
  EXPECT_TRUE(report->kept.empty());
  for (const char* key : {"ca-key.pem", "collector-key.pem", "agent-key.pem", "operator-key.pem",
                          "agents/web-2/agent-key.pem"})
    EXPECT_EQ(mode_of(key), 0600u) << key;
  EXPECT_EQ(mode_of("ca.pem"), 0644u);
  EXPECT_EQ(mode_of(""), 0700u);

  struct Expect {
    const char* file;
    const char* cn;
    Role role;
  };
  for (const Expect& e : {Expect{"collector.pem", "web-1", Role::collector}, Expect{"agent.pem", "web-1", Role::agent},
                          Expect{"operator.pem", "operator", Role::operator_},
                          Expect{"agents/web-2/agent.pem", "web-2", Role::agent}}) {
    auto identity = read_certificate_identity(read(e.file));
    ASSERT_TRUE(identity) << e.file << ": " << identity.error().message;
    EXPECT_EQ(identity->common_name, e.cn) << e.file;
    EXPECT_EQ(identity->role, e.role) << e.file;
    EXPECT_TRUE(verifies(read(e.file))) << e.file;
  }
  EXPECT_EQ(read("agents/web-2/ca.pem"), read("ca.pem"));
  auto material = load_tls_material(options_.dir, "operator");
  ASSERT_TRUE(material);
  EXPECT_EQ(material->cert_pem, read("operator.pem"));
}

TEST_F(FleetPkiTest, ASecondRunKeepsTheCaAndAddsOnlyTheNewAgent) {
  ASSERT_TRUE(init_pki(options_));
  const std::string ca = read("ca.pem"), agent = read("agent.pem");
  options_.agents = {"db-1"};
  auto again = init_pki(options_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(read("ca.pem"), ca);
  EXPECT_EQ(read("agent.pem"), agent);
  EXPECT_EQ(again->created.size(), 3u);  // agents/db-1/{agent-key,agent,ca}.pem
  EXPECT_TRUE(verifies(read("agents/db-1/agent.pem")));
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
