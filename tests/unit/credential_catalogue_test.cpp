// The credential catalogue against a fake root: a temporary directory holding homes listed by the
// fixture passwd file (tests/unit/fixtures/catalogue/passwd), with planted credential files.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "catalogue/credential_catalogue.h"

namespace nhiguard::catalogue {
namespace {

namespace fs = std::filesystem;

const std::string kPasswd = std::string(NHIGUARD_TEST_FIXTURES) + "/catalogue/passwd";

class CatalogueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nhiguard-catalogue-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    // Homes from the fixture passwd that exist; /home/ghost and /nonexistent deliberately do not.
    for (const char* home : {"/root", "/usr/sbin", "/home/alice", "/home/bob", "/var/lib/deploy"}) {
      fs::create_directories(root_ + home);
    }
  }
  void TearDown() override { fs::remove_all(root_); }

  // Creates root_ + relative with some content; returns the real path.
  std::string plant(const std::string& relative, const std::string& content = "secret") {
    const std::string path = root_ + relative;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << content;
    return path;
  }

  std::unique_ptr<CredentialCatalogue> make(std::vector<CatalogueEntry> entries = {},
                                            std::map<std::string, uint32_t> ids = {}) {
    auto catalogue = CredentialCatalogue::create(CatalogueOptions{.root = root_,
                                                                  .passwd_path = kPasswd,
                                                                  .include_builtins = true,
                                                                  .entries = std::move(entries),
                                                                  .initial_ids = std::move(ids)});
    EXPECT_TRUE(catalogue.has_value()) << (catalogue ? "" : catalogue.error().message);
    return catalogue ? std::move(*catalogue) : nullptr;
  }

  static std::map<std::string, ResolvedCredential> by_path(const std::vector<ResolvedCredential>& list) {
    std::map<std::string, ResolvedCredential> out;
    for (const auto& c : list) out.emplace(c.path, c);
    return out;
  }

  std::string root_;
};

TEST(CredentialClassTest, NamesRoundTripWithExplicitValues) {
  EXPECT_EQ(static_cast<uint32_t>(CredentialClass::aws), 1u);
  EXPECT_EQ(static_cast<uint32_t>(CredentialClass::custom), 13u);
  const std::map<CredentialClass, std::string> expected = {{CredentialClass::aws, "aws"},
                                                           {CredentialClass::gcp, "gcp"},
                                                           {CredentialClass::azure, "azure"},
                                                           {CredentialClass::kube_sa_token, "kube-sa-token"},
                                                           {CredentialClass::kubeconfig, "kubeconfig"},
                                                           {CredentialClass::ssh_key, "ssh-key"},
                                                           {CredentialClass::docker_config, "docker-config"},
                                                           {CredentialClass::vault_token, "vault-token"},
                                                           {CredentialClass::netrc, "netrc"},
                                                           {CredentialClass::git, "git"},
                                                           {CredentialClass::pgpass, "pgpass"},
                                                           {CredentialClass::dotenv, "dotenv"},
                                                           {CredentialClass::custom, "custom"}};
  for (const auto& [value, name] : expected) {
    EXPECT_EQ(to_string(value), name);
    EXPECT_EQ(parse_credential_class(name), value);
  }
  EXPECT_EQ(parse_credential_class("AWS"), std::nullopt);
  EXPECT_EQ(parse_credential_class("kube_sa_token"), std::nullopt);
  EXPECT_EQ(to_string(static_cast<CredentialClass>(99)), "unknown");
}

TEST_F(CatalogueTest, HomesComeFromPasswdPlusRootDeduplicatedAndExisting) {
  auto catalogue = make();
  ASSERT_TRUE(catalogue);
  const std::vector<std::string> expected = {root_ + "/root", root_ + "/usr/sbin", root_ + "/home/alice",
                                             root_ + "/home/bob", root_ + "/var/lib/deploy"};
  EXPECT_EQ(catalogue->homes(), expected);
}

TEST_F(CatalogueTest, MissingPasswdIsAnError) {
  auto catalogue = CredentialCatalogue::create(CatalogueOptions{.root = root_, .passwd_path = root_ + "/nope"});
  ASSERT_FALSE(catalogue.has_value());
  EXPECT_NE(catalogue.error().message.find(root_ + "/nope"), std::string::npos);
}

TEST_F(CatalogueTest, ResolvesPlantedFilesOfEveryBuiltinClass) {
  const std::map<std::string, CredentialClass> planted = {
      {"/home/alice/.aws/credentials", CredentialClass::aws},
      {"/home/alice/.aws/config", CredentialClass::aws},
      {"/home/bob/.config/gcloud/application_default_credentials.json", CredentialClass::gcp},
      {"/home/bob/.config/gcloud/credentials.db", CredentialClass::gcp},
      {"/home/bob/.config/gcloud/legacy_credentials/bob@example.com/adc.json", CredentialClass::gcp},
      {"/root/.azure/msal_token_cache.json", CredentialClass::azure},
      {"/root/.azure/accessTokens.json", CredentialClass::azure},
      {"/var/run/secrets/kubernetes.io/serviceaccount/token", CredentialClass::kube_sa_token},
      {"/run/secrets/eks.amazonaws.com/serviceaccount/token", CredentialClass::kube_sa_token},
      {"/var/run/secrets/tokens/vault-audience", CredentialClass::kube_sa_token},
      {"/root/.kube/config", CredentialClass::kubeconfig},
      {"/etc/kubernetes/admin.conf", CredentialClass::kubeconfig},
      {"/etc/kubernetes/kubelet.conf", CredentialClass::kubeconfig},
      {"/home/alice/.ssh/id_ed25519", CredentialClass::ssh_key},
      {"/home/alice/.ssh/id_rsa", CredentialClass::ssh_key},
      {"/etc/ssh/ssh_host_ed25519_key", CredentialClass::ssh_key},
      {"/home/alice/.docker/config.json", CredentialClass::docker_config},
      {"/run/user/1000/containers/auth.json", CredentialClass::docker_config},
      {"/home/bob/.config/containers/auth.json", CredentialClass::docker_config},
      {"/var/lib/deploy/.vault-token", CredentialClass::vault_token},  // nologin service account
      {"/home/bob/.netrc", CredentialClass::netrc},
      {"/home/bob/.git-credentials", CredentialClass::git},
      {"/home/alice/.pgpass", CredentialClass::pgpass},
  };
  for (const auto& [path, cls] : planted) plant(path);
  // Not credentials: public halves, look-alikes, a directory, a home that passwd does not list.
  plant("/home/alice/.ssh/id_ed25519.pub");
  plant("/home/alice/.ssh/id_rsa-cert.pub");
  plant("/etc/ssh/ssh_host_ed25519_key.pub");
  plant("/home/alice/.ssh/known_hosts");
  plant("/home/alice/.aws/credentials.bak");
  fs::create_directories(root_ + "/home/alice/.ssh/id_directory");
  plant("/home/carol/.aws/credentials");

  auto catalogue = make();
  ASSERT_TRUE(catalogue);
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message;
  const auto got = by_path(*resolved);
  for (const auto& [path, cls] : planted) {
    const auto it = got.find(root_ + path);
    ASSERT_NE(it, got.end()) << path;
    EXPECT_EQ(it->second.credential_class, cls) << path;
    EXPECT_GT(it->second.credential_id, 0u);
    EXPECT_TRUE(S_ISREG(it->second.mode));
    EXPECT_EQ(it->second.uid, getuid());
  }
  EXPECT_EQ(got.size(), planted.size());
  std::set<uint32_t> ids;
  for (const auto& c : *resolved) ids.insert(c.credential_id);
  EXPECT_EQ(ids.size(), resolved->size()) << "ids are unique";
}

TEST_F(CatalogueTest, SymlinkResolvesToTheTargetInode) {
  const std::string target = plant("/srv/vault/real-credentials");
  fs::create_directories(root_ + "/home/alice/.aws");
  fs::create_symlink(target, root_ + "/home/alice/.aws/credentials");
  fs::create_directories(root_ + "/home/bob/.aws");
  fs::create_symlink(root_ + "/does/not/exist", root_ + "/home/bob/.aws/credentials");  // dangling

  auto catalogue = make();
  ASSERT_TRUE(catalogue);
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  ASSERT_EQ(resolved->size(), 1u);
  const ResolvedCredential& c = resolved->front();
  struct stat st{};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(c.path, root_ + "/home/alice/.aws/credentials");
  EXPECT_EQ(c.ino, st.st_ino);
  EXPECT_EQ(c.dev, (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev));
}

TEST(KernelDevTest, UsesTheKernelsTwentyBitMinorLayout) {
  EXPECT_EQ(kernel_dev(makedev(8, 1)), (8ull << 20) | 1);
  EXPECT_EQ(kernel_dev(makedev(259, 3)), (259ull << 20) | 3);
  EXPECT_EQ(kernel_dev(makedev(0, 0x12345)), 0x12345ull);
  EXPECT_EQ(kernel_dev(makedev(253, 300)), (253ull << 20) | 300);
  // Userspace's encoding differs as soon as major != 0 or minor > 255.
  EXPECT_NE(kernel_dev(makedev(8, 1)), static_cast<uint64_t>(makedev(8, 1)));
}

TEST_F(CatalogueTest, ResolvedDevMatchesStatOfThisFilesystem) {
  const std::string path = plant("/home/alice/.netrc");
  auto catalogue = make();
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  ASSERT_EQ(resolved->size(), 1u);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(resolved->front().dev, (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev));
  EXPECT_EQ(resolved->front().dev, kernel_dev(st.st_dev));
}

TEST_F(CatalogueTest, OneEntryPerFileWithAliases) {
  const std::string first = plant("/home/alice/.netrc");
  ASSERT_EQ(::link(first.c_str(), (root_ + "/home/bob/.netrc").c_str()), 0);
  auto catalogue = make();
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  ASSERT_EQ(resolved->size(), 1u);
  EXPECT_EQ(resolved->front().path, first);
  EXPECT_EQ(resolved->front().aliases, std::vector<std::string>{root_ + "/home/bob/.netrc"});
}

TEST_F(CatalogueTest, IdsAreStableAcrossRescans) {
  plant("/home/alice/.aws/credentials");
  plant("/home/bob/.netrc");
  auto catalogue = make();
  auto first = catalogue->resolve();
  ASSERT_TRUE(first.has_value());
  const auto before = by_path(*first);
  const uint32_t aws_id = before.at(root_ + "/home/alice/.aws/credentials").credential_id;
  const uint32_t netrc_id = before.at(root_ + "/home/bob/.netrc").credential_id;

  // A new file, a removed one, and rescans.
  plant("/home/alice/.vault-token");
  fs::remove(root_ + "/home/bob/.netrc");
  auto second = catalogue->resolve();
  ASSERT_TRUE(second.has_value());
  const auto during = by_path(*second);
  EXPECT_EQ(during.at(root_ + "/home/alice/.aws/credentials").credential_id, aws_id);
  EXPECT_EQ(during.count(root_ + "/home/bob/.netrc"), 0u);
  const uint32_t vault_id = during.at(root_ + "/home/alice/.vault-token").credential_id;
  EXPECT_NE(vault_id, aws_id);
  EXPECT_NE(vault_id, netrc_id) << "ids are never reused";

  // The removed file comes back (new inode): same id as before.
  plant("/home/bob/.netrc", "other");
  auto third = catalogue->resolve();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(by_path(*third).at(root_ + "/home/bob/.netrc").credential_id, netrc_id);

  // A new catalogue seeded with the id table keeps them too, and continues above them.
  auto restarted = make({}, catalogue->id_table());
  plant("/home/alice/.pgpass");
  auto fourth = restarted->resolve();
  ASSERT_TRUE(fourth.has_value());
  const auto after = by_path(*fourth);
  EXPECT_EQ(after.at(root_ + "/home/alice/.aws/credentials").credential_id, aws_id);
  EXPECT_EQ(after.at(root_ + "/home/alice/.vault-token").credential_id, vault_id);
  const uint32_t pgpass_id = after.at(root_ + "/home/alice/.pgpass").credential_id;
  for (const auto& [path, id] : catalogue->id_table()) EXPECT_GT(pgpass_id, id) << path;
}

TEST_F(CatalogueTest, ConfigEntriesAddPathsAndGlobsWithClassAndOwner) {
  plant("/srv/app/prod.env");
  plant("/srv/app/staging.env");
  plant("/srv/app/readme.txt");
  plant("/etc/app/token[1]");  // a literal path with glob metacharacters
  plant("/home/alice/.config/myapp/token");
  plant("/opt/gcp/sa-key.json");
  std::vector<CatalogueEntry> entries = {
      {.pattern = "/srv/app/*.env", .credential_class = CredentialClass::dotenv},
      {.pattern = "/etc/app/" + escape_glob("token[1]"), .owner = "payments.service"},
      {.pattern = "~/.config/myapp/token"},
      {.pattern = "/opt/gcp/sa-key.json", .credential_class = CredentialClass::gcp},
  };
  auto catalogue = make(entries);
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  const auto got = by_path(*resolved);
  EXPECT_EQ(got.at(root_ + "/srv/app/prod.env").credential_class, CredentialClass::dotenv);
  EXPECT_EQ(got.at(root_ + "/srv/app/staging.env").credential_class, CredentialClass::dotenv);
  EXPECT_EQ(got.count(root_ + "/srv/app/readme.txt"), 0u);
  EXPECT_EQ(got.at(root_ + "/etc/app/token[1]").credential_class, CredentialClass::custom);
  EXPECT_EQ(got.at(root_ + "/etc/app/token[1]").owner, "payments.service");
  EXPECT_EQ(got.at(root_ + "/home/alice/.config/myapp/token").credential_class, CredentialClass::custom);
  EXPECT_EQ(got.at(root_ + "/opt/gcp/sa-key.json").credential_class, CredentialClass::gcp);
  EXPECT_EQ(got.size(), 5u);
}

TEST_F(CatalogueTest, RejectsRelativeAndDotDotPatterns) {
  for (const char* bad : {"relative/path", "", "~alice/.aws/credentials", "/etc/../root/x"}) {
    auto catalogue = CredentialCatalogue::create(
        CatalogueOptions{.root = root_, .passwd_path = kPasswd, .entries = {{.pattern = bad}}});
    EXPECT_FALSE(catalogue.has_value()) << bad;
  }
}

TEST_F(CatalogueTest, NameRulesCoverBuiltinsAndLiteralConfigEntries) {
  std::vector<CatalogueEntry> entries = {
      {.pattern = "~/.myapp/token"},
      {.pattern = "/etc/app/*.key"},                       // glob name: not derivable
      {.pattern = "/etc/" + std::string(64, 'a') + "/x"},  // parent too long
      {.pattern = "/etc/app/" + std::string(63, 'b')},     // exactly 63: kept
      {.pattern = "/etc/app/" + escape_glob("tok*en")},    // literal with a metacharacter
  };
  auto catalogue = make(entries);
  const std::vector<NameRule> rules = catalogue->name_rules();
  const auto has = [&](const std::string& parent, const std::string& name) {
    return std::find(rules.begin(), rules.end(), NameRule{parent, name}) != rules.end();
  };
  const std::vector<NameRule> expected = {
      {".aws", "credentials"},
      {".aws", "config"},
      {".ssh", "id_rsa"},
      {".ssh", "id_ed25519"},
      {".ssh", "id_ecdsa"},
      {".ssh", "id_dsa"},
      {".ssh", "id_ecdsa_sk"},
      {".ssh", "id_ed25519_sk"},
      {"serviceaccount", "token"},
      {".docker", "config.json"},
      {"", ".vault-token"},
      {"", ".netrc"},
      {"", ".git-credentials"},
      {"", ".pgpass"},
      {"", "application_default_credentials.json"},
      {"containers", "auth.json"},
      {".kube", "config"},
      {"kubernetes", "admin.conf"},
      {"kubernetes", "kubelet.conf"},
      {".azure", "msal_token_cache.json"},
      {"gcloud", "credentials.db"},
      {".myapp", "token"},
      {"app", std::string(63, 'b')},
      {"app", "tok*en"},
  };
  for (const NameRule& rule : expected) EXPECT_TRUE(has(rule.parent, rule.name)) << rule.parent << "/" << rule.name;
  EXPECT_FALSE(has("legacy_credentials", "adc.json"));
  EXPECT_FALSE(has("gcloud", "application_default_credentials.json")) << "replaced by the parent-agnostic hint";
  EXPECT_FALSE(has("tokens", "*"));
  for (const NameRule& rule : rules) {
    EXPECT_FALSE(rule.name.empty());
    EXPECT_LE(rule.name.size(), 63u);
    EXPECT_LE(rule.parent.size(), 63u);
    EXPECT_EQ(rule.parent.find('/'), std::string::npos);
    if (rule.name != "tok*en") {
      EXPECT_EQ(rule.name.find_first_of("*?["), std::string::npos) << rule.name;
    }
  }
  EXPECT_TRUE(std::is_sorted(rules.begin(), rules.end()));
  EXPECT_EQ(std::adjacent_find(rules.begin(), rules.end()), rules.end()) << "no duplicates";
}

TEST_F(CatalogueTest, MatchPathPositivesAndNegatives) {
  auto catalogue = make({{.pattern = "/srv/app/*.env", .credential_class = CredentialClass::dotenv}});
  const auto cls = [&](const std::string& relative) -> std::optional<CredentialClass> {
    const auto m = catalogue->match_path(root_ + relative);
    if (!m) return std::nullopt;
    return m->credential_class;
  };
  // Positives, whether or not the file exists yet.
  EXPECT_EQ(cls("/home/alice/.aws/credentials"), CredentialClass::aws);
  EXPECT_EQ(cls("/root/.ssh/id_rsa"), CredentialClass::ssh_key);
  EXPECT_EQ(cls("/home/bob/.ssh/id_ecdsa_sk"), CredentialClass::ssh_key);
  EXPECT_EQ(cls("/var/lib/deploy/.vault-token"), CredentialClass::vault_token);
  EXPECT_EQ(cls("/run/user/1000/containers/auth.json"), CredentialClass::docker_config);
  EXPECT_EQ(cls("/var/run/secrets/tokens/aws-token"), CredentialClass::kube_sa_token);
  EXPECT_EQ(cls("/etc/ssh/ssh_host_rsa_key"), CredentialClass::ssh_key);
  EXPECT_EQ(cls("/srv/app/prod.env"), CredentialClass::dotenv);
  EXPECT_EQ(cls("//home/alice//.aws/./credentials"), CredentialClass::aws) << "normalized";
  // Negatives.
  EXPECT_EQ(cls("/home/alice/.aws/credentials.bak"), std::nullopt);
  EXPECT_EQ(cls("/home/alice/.ssh/id_rsa.pub"), std::nullopt);
  EXPECT_EQ(cls("/etc/ssh/ssh_host_rsa_key.pub"), std::nullopt);
  EXPECT_EQ(cls("/home/alice/.ssh/known_hosts"), std::nullopt);
  EXPECT_EQ(cls("/home/ghost/.aws/credentials"), std::nullopt) << "home does not exist";
  EXPECT_EQ(cls("/run/user/1000/nested/containers/auth.json"), std::nullopt) << "* does not cross /";
  EXPECT_EQ(cls("/var/run/secrets/tokens/.hidden"), std::nullopt) << "leading dot must be literal";
  EXPECT_EQ(cls("/srv/app/sub/prod.env"), std::nullopt);
  EXPECT_EQ(catalogue->match_path("home/alice/.aws/credentials"), std::nullopt);
  EXPECT_EQ(catalogue->match_path("/home/alice/.aws/credentials"), std::nullopt) << "outside the fake root";

  // After a resolve the id of a known path comes with the match.
  plant("/home/alice/.aws/credentials");
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  const auto m = catalogue->match_path(root_ + "/home/alice/.aws/credentials");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->credential_id, resolved->front().credential_id);
  EXPECT_EQ(catalogue->match_path(root_ + "/home/bob/.aws/credentials")->credential_id, 0u);
}

TEST_F(CatalogueTest, SymlinkedHomeMatchesByItsCanonicalPathToo) {
  fs::remove_all(root_ + "/home/bob");
  fs::create_directories(root_ + "/data/bob");
  fs::create_directory_symlink(root_ + "/data/bob", root_ + "/home/bob");
  const std::string planted = plant("/data/bob/.netrc");
  auto catalogue = make();
  const auto homes = catalogue->homes();
  EXPECT_NE(std::find(homes.begin(), homes.end(), root_ + "/data/bob"), homes.end());
  EXPECT_EQ(catalogue->match_path(root_ + "/data/bob/.netrc")->credential_class, CredentialClass::netrc);
  EXPECT_EQ(catalogue->match_path(root_ + "/home/bob/.netrc")->credential_class, CredentialClass::netrc);
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  ASSERT_EQ(resolved->size(), 1u) << "one file, one entry";
  EXPECT_EQ(resolved->front().path, root_ + "/home/bob/.netrc");
  EXPECT_EQ(resolved->front().aliases, std::vector<std::string>{planted});
}

TEST_F(CatalogueTest, NewHomeIsPickedUpOnRescan) {
  fs::remove_all(root_ + "/home/bob");
  auto catalogue = make();
  EXPECT_EQ(catalogue->match_path(root_ + "/home/bob/.netrc"), std::nullopt);
  plant("/home/bob/.netrc");
  auto resolved = catalogue->resolve();
  ASSERT_TRUE(resolved.has_value());
  EXPECT_EQ(resolved->size(), 1u);
  EXPECT_TRUE(catalogue->match_path(root_ + "/home/bob/.netrc").has_value());
}

TEST_F(CatalogueTest, ConcurrentResolveAndMatch) {
  plant("/home/alice/.aws/credentials");
  plant("/home/bob/.netrc");
  auto catalogue = make();
  std::atomic<bool> stop{false};
  std::atomic<int> misses{0};
  std::vector<std::thread> matchers;
  for (int t = 0; t < 4; ++t) {
    matchers.emplace_back([&] {
      while (!stop) {
        if (!catalogue->match_path(root_ + "/home/alice/.aws/credentials")) ++misses;
        (void)catalogue->name_rules();
        (void)catalogue->id_table();
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    auto resolved = catalogue->resolve();
    ASSERT_TRUE(resolved.has_value());
    ASSERT_EQ(resolved->size(), 2u);
  }
  stop = true;
  for (auto& thread : matchers) thread.join();
  EXPECT_EQ(misses.load(), 0);
}

TEST(CatalogueBuiltins, EveryBuiltinIsAbsoluteOrHomeRelative) {
  for (const CatalogueEntry& e : builtin_entries()) {
    EXPECT_TRUE(e.pattern.starts_with("/") || e.pattern.starts_with("~/")) << e.pattern;
  }
  EXPECT_EQ(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
}

}  // namespace
}  // namespace nhiguard::catalogue
