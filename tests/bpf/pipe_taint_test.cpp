// A pipe from a reader to a sender (`cat creds | curl -d @- ...`), for real: two sibling processes
// of one cgroup joined by a pipe, the reader opens and reads the credential and writes it into the
// pipe, the sender (which never opened the file and descends from no reader) reads its stdin and
// sends it out. The sender's egress must be reported as tainted by the reader's read, marked as the
// cgroup window's lower-confidence attribution; a sender in another cgroup is not.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "sensor_harness.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::events::EgressEvent;
using nhiguard::testing::SensorHarness;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 41;

class PipeTaintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = SensorHarness::start("pipe", nhiguard::testing::kernel_has_direct_reads());
    ASSERT_TRUE(harness_);
    dir_ = fs::path("/tmp") / ("nhiguard-pipe-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    credential_ = (dir_ / "token").string();
    std::ofstream(credential_) << "ghp_EXAMPLEEXAMPLEEXAMPLEEXAMPLE0000\n";
    struct stat st{};
    ASSERT_EQ(stat(credential_.c_str(), &st), 0);
    key_ = {.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
    ASSERT_TRUE(harness_->sensor().credential_tables().upsert_credential(
        key_, {.credential_id = kCredentialId, .class_id = 1}));
    readers_ = std::make_unique<TestCgroup>("deploy.service");
    elsewhere_ = std::make_unique<TestCgroup>("other.service");
  }

  void TearDown() override {
    readers_.reset();
    elsewhere_.reset();
    if (harness_) (void)harness_->sensor().credential_tables().remove_credential(key_);
    harness_.reset();
    fs::remove_all(dir_);
  }

  // `cat token | sender`: two siblings of the test, the sender in `sender_cgroup`. Returns the
  // egress events of both; *reader_pid receives the reader's pid.
  std::vector<EgressEvent> run_pipeline(const TestCgroup& sender_cgroup, pid_t* reader_pid) {
    int pipe_fds[2];
    EXPECT_EQ(pipe(pipe_fds), 0);
    const std::string path = credential_;
    const pid_t sender = spawn_in_cgroup(sender_cgroup, [&] {
      close(pipe_fds[1]);
      if (dup2(pipe_fds[0], 0) != 0) return 20;
      char data[256];
      size_t total = 0;
      for (ssize_t n; (n = read(0, data + total, sizeof(data) - total)) > 0;) total += static_cast<size_t>(n);
      if (total == 0) return 21;
      int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = {htonl(INADDR_LOOPBACK)}, .sin_zero = {}};
      const bool sent =
          sendto(sock, data, total, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == static_cast<ssize_t>(total);
      close(sock);
      return sent ? 0 : 22;
    });
    const pid_t reader = spawn_in_cgroup(*readers_, [&] {
      close(pipe_fds[0]);
      int fd = open(path.c_str(), O_RDONLY);
      if (fd < 0) return 30;
      char data[256];
      const ssize_t n = read(fd, data, sizeof(data));
      close(fd);
      return n > 0 && write(pipe_fds[1], data, static_cast<size_t>(n)) == n ? 0 : 31;
    });
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    EXPECT_EQ(wait_for_exit(reader), 0);
    EXPECT_EQ(wait_for_exit(sender), 0);
    *reader_pid = reader;

    return SensorHarness::of_type<EgressEvent>(
        harness_->events_of({static_cast<uint32_t>(sender), static_cast<uint32_t>(reader)}));
  }

  // Only the sender's.
  static std::vector<EgressEvent> of_sender(std::vector<EgressEvent> events, pid_t reader) {
    std::erase_if(events, [&](const EgressEvent& e) { return e.process.tgid == static_cast<uint32_t>(reader); });
    return events;
  }

  std::unique_ptr<SensorHarness> harness_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> readers_;
  std::unique_ptr<TestCgroup> elsewhere_;
};

TEST_F(PipeTaintTest, SenderOfAPipeFromAReaderIsTaintedByTheCgroupWindow) {
  pid_t reader = 0;
  auto sent = of_sender(run_pipeline(*readers_, &reader), reader);
  ASSERT_EQ(sent.size(), 1u) << "the sender's egress is reported";
  const auto& egress = sent[0];
  EXPECT_EQ(egress.taint_credential_id, kCredentialId);
  EXPECT_EQ(egress.taint_source_tgid, static_cast<uint32_t>(reader));
  EXPECT_TRUE(egress.taint_from_cgroup_window) << "attributed by the window, not by its own read";
  EXPECT_FALSE(egress.denied);
  EXPECT_EQ(egress.port, 9);
  EXPECT_EQ(egress.process.cgroup_id, readers_->id());
}

TEST_F(PipeTaintTest, SenderInAnotherCgroupIsNotAttributed) {
  pid_t reader = 0;
  auto sent = of_sender(run_pipeline(*elsewhere_, &reader), reader);
  EXPECT_TRUE(sent.empty()) << "the window is the reader's cgroup only";
}

}  // namespace
