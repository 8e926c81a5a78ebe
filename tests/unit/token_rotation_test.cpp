// A projected service-account token that the kubelet rotates (tests/support/kubelet_atomic_writer.h)
// is watched from the moment its new version is written: RotationWatch (inotify) makes
// WatchedCredentials sync at once, and the catalogue resolves every `..<timestamp>` version of the
// file under the one credential, so the kernel's table (here in memory) holds the new inode before
// and after the `..data` swap, without waiting for a rescan.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>

#include <gtest/gtest.h>

#include "../support/kubelet_atomic_writer.h"
#include "catalogue/watched_credentials.h"
#include "fake_kernel.h"
#include "temp_dir.h"

namespace nhiguard::catalogue {
namespace {

std::pair<uint64_t, uint64_t> inode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return {kernel_dev(st.st_dev), st.st_ino};
}

std::optional<uint32_t> kernel_id_of(const testing::FakeCredentialTables& tables, std::pair<uint64_t, uint64_t> inode) {
  const auto entries = tables.credentials();
  for (const auto& [key, value] : *entries) {
    if (key.dev == inode.first && key.ino == inode.second) return value.credential_id;
  }
  return std::nullopt;
}

class TokenRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    volume_ = (dir_.path() / "pods/p1/volumes/kubernetes.io~projected/kube-api-access-x").string();
    writer_ = std::make_unique<testing::KubeletAtomicWriter>(volume_, "token", "eyJ.first.token");
    fs_passwd_ = (dir_.path() / "passwd").string();
    std::ofstream(fs_passwd_) << "root:x:0:0:root:/root:/bin/sh\n";
    CatalogueOptions options{.passwd_path = fs_passwd_, .include_builtins = false};
    options.entries.push_back(
        {.pattern = escape_glob(dir_.path().string()) + "/pods/*/volumes/kubernetes.io~projected/*/token",
         .credential_class = CredentialClass::kube_sa_token});
    auto catalogue = CredentialCatalogue::create(std::move(options));
    ASSERT_TRUE(catalogue) << catalogue.error().message;
    watched_ = std::make_unique<WatchedCredentials>(std::move(*catalogue), tables_,
                                                    (dir_.path() / "credential_ids.json").string());
    ASSERT_TRUE(watched_->sync("start"));
    ASSERT_GE(watched_->rotation_fd(), 0) << "inotify is available";
    auto first = watched_->by_path(writer_->path());
    ASSERT_TRUE(first);
    id_ = first->credential_id;
  }

  testing::TempDir dir_{"nhiguard-token-rotation"};
  std::string volume_;
  std::string fs_passwd_;
  std::unique_ptr<testing::KubeletAtomicWriter> writer_;
  testing::FakeCredentialTables tables_;
  std::unique_ptr<WatchedCredentials> watched_;
  uint32_t id_ = 0;
};

TEST_F(TokenRotationTest, TheNewVersionIsWatchedWhenWrittenAndAfterTheSwap) {
  const auto old_inode = inode_of(writer_->path());
  EXPECT_EQ(kernel_id_of(tables_, old_inode), id_);

  const std::string next = writer_->write_version("eyJ.second.token");
  const auto new_inode = inode_of(volume_ + "/" + next + "/token");
  auto synced = watched_->on_rotation_events();
  ASSERT_TRUE(synced) << synced.error().message;
  EXPECT_TRUE(*synced) << "the new version directory and file are events";
  EXPECT_EQ(kernel_id_of(tables_, new_inode), id_) << "watched before the swap, as the same credential";
  EXPECT_EQ(kernel_id_of(tables_, old_inode), id_) << "the current version stays watched until it goes";

  writer_->swap_to(next);
  synced = watched_->on_rotation_events();
  ASSERT_TRUE(synced) << synced.error().message;
  EXPECT_TRUE(*synced);
  EXPECT_EQ(inode_of(writer_->path()), new_inode);
  EXPECT_EQ(kernel_id_of(tables_, new_inode), id_);
  EXPECT_FALSE(kernel_id_of(tables_, old_inode)) << "the removed version is no longer watched";
  auto by_path = watched_->by_path(writer_->path());
  ASSERT_TRUE(by_path);
  EXPECT_EQ(by_path->credential_id, id_) << "a rotation keeps the credential's id";
  EXPECT_EQ(watched_->by_inode(new_inode.first, new_inode.second)->credential_id, id_);

  // A second rotation, swapped before the agent looked (a fast kubelet): one look finds it.
  const std::string third = writer_->write_version("eyJ.third.token");
  const auto third_inode = inode_of(volume_ + "/" + third + "/token");
  writer_->swap_to(third);
  synced = watched_->on_rotation_events();
  ASSERT_TRUE(synced);
  EXPECT_TRUE(*synced);
  EXPECT_EQ(kernel_id_of(tables_, third_inode), id_);
  EXPECT_FALSE(kernel_id_of(tables_, new_inode));

  // Nothing happened since: nothing to do.
  synced = watched_->on_rotation_events();
  ASSERT_TRUE(synced);
  EXPECT_FALSE(*synced);
}

}  // namespace
}  // namespace nhiguard::catalogue
