// workload_uri: one stable URI per workload, never a pid, every segment percent-encoded.
#include <gtest/gtest.h>

#include "identity/workload_identity.h"

using namespace nhiguard::identity;

namespace {

const std::string kCid = "0a9b8c7d6e5f40312a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091";
const std::string kPod = "5f2a9d1c-8b3e-4c7a-9e61-0d4f2b8a7c93";

std::string uri_of(std::string_view path, uint32_t uid = 1000) {
  return workload_uri("example.org", "web-1", classify_cgroup_path(path), uid);
}

}  // namespace

TEST(WorkloadUri, PerKind) {
  EXPECT_EQ(uri_of("/system.slice/payments.service"), "spiffe://example.org/host/web-1/systemd/payments.service");
  EXPECT_EQ(uri_of("/system.slice/getty.slice/getty@tty1.service"),
            "spiffe://example.org/host/web-1/systemd/getty%40tty1.service");
  EXPECT_EQ(uri_of("/kubepods.slice/kubepods-pod5f2a9d1c_8b3e_4c7a_9e61_0d4f2b8a7c93.slice/cri-containerd-" + kCid +
                   ".scope"),
            "spiffe://example.org/host/web-1/k8s/pod/" + kPod + "/container/" + kCid);
  EXPECT_EQ(uri_of("/kubepods/besteffort/pod" + kPod), "spiffe://example.org/host/web-1/k8s/pod/" + kPod);
  EXPECT_EQ(uri_of("/system.slice/docker-" + kCid + ".scope"),
            "spiffe://example.org/host/web-1/container/docker/" + kCid);
  EXPECT_EQ(uri_of("/user.slice/user-1000.slice/session-3.scope", 0),
            "spiffe://example.org/host/web-1/user/1000/session/session-3.scope");
  EXPECT_EQ(uri_of("/", 33), "spiffe://example.org/host/web-1/uid/33/process");
}

TEST(WorkloadUri, ContainerWithUnknownRuntime) {
  CgroupWorkload w;
  w.kind = WorkloadKind::container;
  w.container_id = kCid;
  EXPECT_EQ(workload_uri("td", "h", w, 0), "spiffe://td/host/h/container/unknown/" + kCid);
}

TEST(WorkloadUri, SessionFallsBackToProcessUid) {
  CgroupWorkload w;
  w.kind = WorkloadKind::user_session;
  w.name = "session-9.scope";
  EXPECT_EQ(workload_uri("td", "h", w, 1234), "spiffe://td/host/h/user/1234/session/session-9.scope");
}

// Only the system unit has the .../systemd/<unit> URI: a user unit of the same name is the user's,
// and a look-alike directory is a bare process of its uid, so neither can take the unit's identity.
TEST(WorkloadUri, LookAlikeUnitsDoNotGetTheSystemUnitsUri) {
  EXPECT_EQ(uri_of("/system.slice/sshd.service"), "spiffe://example.org/host/web-1/systemd/sshd.service");
  EXPECT_EQ(uri_of("/system.slice/foo.slice/sshd.service"), "spiffe://example.org/host/web-1/systemd/sshd.service");
  EXPECT_EQ(uri_of("/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service"),
            "spiffe://example.org/host/web-1/user/1000/session/sshd.service");
  EXPECT_EQ(uri_of("/nhiguard-test-x/sshd.service", 1000), "spiffe://example.org/host/web-1/uid/1000/process");
  EXPECT_EQ(uri_of("/anything/app.slice/sshd.service", 1000), "spiffe://example.org/host/web-1/uid/1000/process");
  const auto id = make_workload_identity("td", "h", "/anything/app.slice/sshd.service", 77, 1000);
  EXPECT_EQ(id.kind, WorkloadKind::bare_process);
  EXPECT_EQ(id.unit, "");
  EXPECT_EQ(id.cgroup_path, "/anything/app.slice/sshd.service");
  const auto user =
      make_workload_identity("td", "h", "/user.slice/user-1000.slice/user@1000.service/app.slice/x.service", 78, 1000);
  EXPECT_EQ(user.user_unit, "x.service");
  EXPECT_EQ(user.session_uid, 1000u);
  EXPECT_EQ(user.unit, "user@1000.service");
}

TEST(WorkloadUri, EncodesEverySegment) {
  EXPECT_EQ(percent_encode("A-Za-z0-9._~"), "A-Za-z0-9._~");
  EXPECT_EQ(percent_encode("a/b c%d"), "a%2Fb%20c%25d");
  EXPECT_EQ(percent_encode("\xff\x01"), "%FF%01");
  EXPECT_EQ(percent_encode(""), "");
  CgroupWorkload w;
  w.kind = WorkloadKind::systemd_service;
  w.name = "../evil/x.service";
  EXPECT_EQ(workload_uri("td/x", "host name", w, 0), "spiffe://td%2Fx/host/host%20name/systemd/..%2Fevil%2Fx.service");
}

TEST(WorkloadUri, StableAcrossProcessesOfOneWorkload) {
  // Same unit, different uids or pids: one identity.
  EXPECT_EQ(uri_of("/system.slice/payments.service", 998), uri_of("/system.slice/payments.service/worker", 0));
}

TEST(WorkloadIdentity, MakeFillsEverything) {
  const auto id = make_workload_identity("td", "h", "/system.slice/docker-" + kCid + ".scope", 4242, 0);
  EXPECT_EQ(id.kind, WorkloadKind::container);
  EXPECT_EQ(id.runtime, "docker");
  EXPECT_EQ(id.container_id, kCid);
  EXPECT_EQ(id.id, kCid);
  EXPECT_EQ(id.name, kCid.substr(0, 12));
  EXPECT_EQ(id.unit, "docker-" + kCid + ".scope");
  EXPECT_EQ(id.cgroup_path, "/system.slice/docker-" + kCid + ".scope");
  EXPECT_EQ(id.cgroup_id, 4242u);
  EXPECT_EQ(id.uri, "spiffe://td/host/h/container/docker/" + kCid);
}
