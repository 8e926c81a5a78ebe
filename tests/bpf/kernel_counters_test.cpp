// Exhaustion is counted in the kernel, never silent: a credential read (or a fork of a tainted
// process) that finds nhg_taint full is counted in NHG_CTR_TAINT_MAP_FULL, and egress records that
// find the ring buffer full are counted and are part of ringbuf_drops(). Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 11;
// Keys far above any pid (pid_max is at most 2^22): they never collide with a real process.
constexpr uint32_t kFakeTgidBase = 0x40000000;

class KernelCountersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(nhiguard::kernel::check_kernel_btf().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_tracefs().has_value());
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-counters-" + std::to_string(getpid());
    dir_ = fs::path("/tmp") / ("nhiguard-bpf-counters-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    credential_ = (dir_ / "credentials").string();
    std::ofstream(credential_) << "[default]\naws_access_key_id = AKIACOUNTERS\n";
    cgroup_ = std::make_unique<TestCgroup>("payments.service");
  }
  void TearDown() override {
    sensor_.reset();
    cgroup_.reset();
    fs::remove_all(pin_dir_);
    fs::remove_all(dir_);
  }
  void start_sensor(nhiguard::kernel::SensorOptions options) {
    options.pin_dir = pin_dir_;
    auto sensor = nhiguard::kernel::KernelSensor::start(options, [](std::span<const std::byte>) {});
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    sensor_ = std::move(*sensor);
    struct stat st{};
    ASSERT_EQ(stat(credential_.c_str(), &st), 0);
    const nhg_inode_key key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev),
                            .ino = st.st_ino};
    ASSERT_TRUE(sensor_->credential_tables().upsert_credential(key, {.credential_id = kCredentialId, .class_id = 1}));
  }
  uint64_t counter(nhg_counter c) {
    auto counters = sensor_->counters().counters();
    EXPECT_TRUE(counters.has_value());
    return counters ? counters->values[c] : 0;
  }
  // Fills nhg_taint from user space until the kernel refuses an entry; returns how many it took.
  uint32_t fill_taint_map(int fd) {
    uint32_t added = 0;
    nhg_taint value{.start_ns = 1, .credential_id = kCredentialId};
    for (uint32_t key = kFakeTgidBase;; ++key) {
      if (bpf_map_update_elem(fd, &key, &value, BPF_NOEXIST) != 0) {
        EXPECT_EQ(errno, E2BIG) << "refused for another reason than a full map";
        return added;
      }
      ++added;
    }
  }
  int read_credential() {
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0) return 10;
    char buf[16];
    const ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? 0 : 11;
  }

  std::string pin_dir_;
  fs::path dir_;
  std::string credential_;
  std::unique_ptr<TestCgroup> cgroup_;
  std::unique_ptr<nhiguard::kernel::KernelSensor> sensor_;
};

TEST_F(KernelCountersTest, FullTaintMapIsCountedForReadsAndForks) {
  ASSERT_NO_FATAL_FAILURE(start_sensor({.ringbuf_bytes = 1u << 20}));
  const int taint_fd = bpf_obj_get((pin_dir_ + "/nhg_taint").c_str());
  ASSERT_GE(taint_fd, 0) << strerror(errno);
  EXPECT_EQ(fill_taint_map(taint_fd), static_cast<uint32_t>(NHG_TAINT_MAX_ENTRIES));
  const uint64_t before = counter(NHG_CTR_TAINT_MAP_FULL);

  // A read with the map full: not tainted, and counted.
  pid_t reader = spawn_in_cgroup(*cgroup_, [&] { return read_credential(); });
  ASSERT_EQ(wait_for_exit(reader), 0);
  EXPECT_FALSE(sensor_->enforcement().taint_of(static_cast<uint32_t>(reader)).has_value());
  EXPECT_EQ(counter(NHG_CTR_TAINT_MAP_FULL), before + 1);

  // One slot free: a reader gets it, and its child (the inheritance on fork) finds the map full.
  const uint32_t freed = kFakeTgidBase;
  ASSERT_EQ(bpf_map_delete_elem(taint_fd, &freed), 0);
  pid_t parent = spawn_in_cgroup(*cgroup_, [&] {
    if (read_credential() != 0) return 10;
    const pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    waitpid(child, &status, 0);
    return 0;
  });
  ASSERT_EQ(wait_for_exit(parent), 0);
  EXPECT_EQ(counter(NHG_CTR_TAINT_MAP_FULL), before + 2);
  close(taint_fd);
}

// A read of an inherited credential fd (the read path, bpf/readpath.bpf.h) taints the reader as an
// open does, and a full map is counted there too: the opener's taint and the reader's, one each.
TEST_F(KernelCountersTest, FullTaintMapIsCountedForAReadOfAnInheritedFd) {
  ASSERT_NO_FATAL_FAILURE(start_sensor({.ringbuf_bytes = 1u << 20}));
  const int taint_fd = bpf_obj_get((pin_dir_ + "/nhg_taint").c_str());
  ASSERT_GE(taint_fd, 0) << strerror(errno);
  EXPECT_EQ(fill_taint_map(taint_fd), static_cast<uint32_t>(NHG_TAINT_MAX_ENTRIES));
  const uint64_t before = counter(NHG_CTR_TAINT_MAP_FULL);
  pid_t opener = spawn_in_cgroup(*cgroup_, [&] {
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0) return 10;
    const pid_t reader = fork();
    if (reader == 0) {
      char buf[16];
      _exit(read(fd, buf, sizeof buf) > 0 ? 0 : 11);
    }
    return wait_for_exit(reader);
  });
  ASSERT_EQ(wait_for_exit(opener), 0);
  EXPECT_EQ(counter(NHG_CTR_TAINT_MAP_FULL), before + 2);
  close(taint_fd);
}

// The agent's ring buffer is never read here: every egress record finds it full, and each is a
// drop that ringbuf_drops() includes (it once counted file and lifecycle drops only).
TEST_F(KernelCountersTest, EgressRecordsThatFindTheRingFullAreRingbufDrops) {
  ASSERT_NO_FATAL_FAILURE(start_sensor({.ringbuf_bytes = 4096, .report_all_egress = true}));
  auto before = sensor_->counters().counters();
  ASSERT_TRUE(before.has_value());
  constexpr int kConnects = 200;
  pid_t sender = spawn_in_cgroup(*cgroup_, [&] {
    sockaddr_in to{.sin_family = AF_INET, .sin_port = htons(9)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < kConnects; ++i) {
      const int fd = socket(AF_INET, SOCK_DGRAM, 0);
      if (fd < 0) return 10;
      (void)connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
      close(fd);
    }
    return 0;
  });
  ASSERT_EQ(wait_for_exit(sender), 0);
  auto after = sensor_->counters().counters();
  ASSERT_TRUE(after.has_value());
  auto delta = [&](nhg_counter c) { return after->values[c] - before->values[c]; };
  // The 4 KiB ring holds a few records at most; the rest of the connects are egress drops.
  EXPECT_GE(delta(NHG_CTR_RINGBUF_DROP_EGRESS), static_cast<uint64_t>(kConnects) - 64);
  EXPECT_EQ(
      after->ringbuf_drops() - before->ringbuf_drops(),
      delta(NHG_CTR_RINGBUF_DROP_FILE) + delta(NHG_CTR_RINGBUF_DROP_PROCESS) + delta(NHG_CTR_RINGBUF_DROP_EGRESS));
}

}  // namespace
