// A rotated Kubernetes service-account token, for real: the sensor is loaded, the agent's
// WatchedCredentials watches a projected volume laid out by the kubelet's atomic writer
// (tests/support/kubelet_atomic_writer.h), the kubelet's rotation is simulated, and a process reads
// the new token right after the `..data` swap: the read must be a credential event, although no
// rescan ran (the agent sees the rotation through inotify, as its event loop does).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "catalogue/watched_credentials.h"
#include "events/kernel_event.h"
#include "kubelet_atomic_writer.h"
#include "sensor_harness.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::events::FileOpenEvent;
using nhiguard::testing::SensorHarness;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

class TokenRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = SensorHarness::start("rotation", nhiguard::testing::kernel_has_direct_reads());
    ASSERT_TRUE(harness_);
    dir_ = fs::path("/tmp") / ("nhiguard-rotation-" + std::to_string(getpid()));
    volume_ = (dir_ / "pods/p1/volumes/kubernetes.io~projected/kube-api-access-x").string();
    writer_ = std::make_unique<nhiguard::testing::KubeletAtomicWriter>(volume_, "token", "eyJ.first.token");
    std::ofstream((dir_ / "passwd").string()) << "root:x:0:0:root:/root:/bin/sh\n";
    nhiguard::catalogue::CatalogueOptions catalogue_options{.passwd_path = (dir_ / "passwd").string(),
                                                            .include_builtins = false};
    catalogue_options.entries.push_back(
        {.pattern = nhiguard::catalogue::escape_glob(dir_.string()) + "/pods/*/volumes/kubernetes.io~projected/*/token",
         .credential_class = nhiguard::catalogue::CredentialClass::kube_sa_token});
    auto catalogue = nhiguard::catalogue::CredentialCatalogue::create(std::move(catalogue_options));
    ASSERT_TRUE(catalogue) << catalogue.error().message;
    watched_ = std::make_unique<nhiguard::catalogue::WatchedCredentials>(
        std::move(*catalogue), harness_->sensor().credential_tables(), (dir_ / "credential_ids.json").string());
    ASSERT_TRUE(watched_->sync("start"));
    ASSERT_GE(watched_->rotation_fd(), 0);
    id_ = watched_->by_path(writer_->path())->credential_id;
    cgroup_ = std::make_unique<TestCgroup>("kubelet-pod.service");
  }

  void TearDown() override {
    cgroup_.reset();
    watched_.reset();  // its kernel entries go with the pinned maps below
    harness_.reset();
    fs::remove_all(dir_);
  }

  // What the agent's event loop does when the inotify descriptor is readable: wait for it (at most
  // a second, far below any rescan interval) and sync.
  void agent_looks() {
    pollfd ready{.fd = watched_->rotation_fd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(poll(&ready, 1, 1000), 1) << "no inotify event for the rotation";
    auto synced = watched_->on_rotation_events();
    ASSERT_TRUE(synced) << synced.error().message;
    EXPECT_TRUE(*synced);
  }

  // A child reads the token through the volume's `token` path; its credential events.
  std::vector<FileOpenEvent> read_token() {
    const std::string path = writer_->path();
    pid_t pid = spawn_in_cgroup(*cgroup_, [&] {
      int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) return 10;
      char buf[64];
      const bool ok = read(fd, buf, sizeof(buf)) > 0;
      close(fd);
      return ok ? 0 : 11;
    });
    EXPECT_EQ(wait_for_exit(pid), 0);
    auto mine = SensorHarness::of_type<FileOpenEvent>(harness_->events_of({static_cast<uint32_t>(pid)}));
    return mine;
  }

  void expect_read_of(const std::vector<FileOpenEvent>& opens, const std::string& version_file) {
    struct stat st{};
    ASSERT_EQ(stat(version_file.c_str(), &st), 0);
    ASSERT_EQ(opens.size(), 1u) << "the read of the rotated token is an event";
    EXPECT_TRUE(opens[0].by_inode);
    EXPECT_EQ(opens[0].credential_id, id_) << "the same credential as before the rotation";
    EXPECT_EQ(opens[0].ino, st.st_ino) << "the new version's inode";
  }

  std::unique_ptr<SensorHarness> harness_;
  fs::path dir_;
  std::string volume_;
  std::unique_ptr<nhiguard::testing::KubeletAtomicWriter> writer_;
  std::unique_ptr<nhiguard::catalogue::WatchedCredentials> watched_;
  std::unique_ptr<TestCgroup> cgroup_;
  uint32_t id_ = 0;
};

// The kubelet writes the new version, the agent's loop wakes on it, then the swap and at once a read.
TEST_F(TokenRotationTest, ReadRightAfterTheSwapIsAnEvent) {
  expect_read_of(read_token(), writer_->path());
  const std::string next = writer_->write_version("eyJ.second.token");
  agent_looks();
  writer_->swap_to(next);
  expect_read_of(read_token(), volume_ + "/" + next + "/token");
}

// The kubelet swaps before the agent looked: the agent's next wake-up (not the rescan) catches up.
TEST_F(TokenRotationTest, SwapBeforeTheAgentLooksIsCaughtAtItsNextWakeUp) {
  const std::string next = writer_->write_version("eyJ.second.token");
  writer_->swap_to(next);
  agent_looks();
  expect_read_of(read_token(), volume_ + "/" + next + "/token");
}

}  // namespace
