// classify_cgroup_path: every real layout in fixtures/identity/cgroup_paths.tsv, plus targeted cases.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "identity/cgroup_classifier.h"

using namespace nhiguard::identity;

namespace {

struct Row {
  int line = 0;
  std::vector<std::string> cols;
};

std::vector<Row> load_rows() {
  std::ifstream in(std::string(NHIGUARD_TEST_FIXTURES) + "/identity/cgroup_paths.tsv");
  std::vector<Row> rows;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.starts_with("#")) continue;
    Row row{n, {}};
    std::string col;
    std::istringstream fields(line);
    while (std::getline(fields, col, '\t')) row.cols.push_back(col == "-" ? "" : col);
    rows.push_back(std::move(row));
  }
  return rows;
}

const std::string kDockerId = "0a9b8c7d6e5f40312a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091";

}  // namespace

TEST(CgroupClassifier, FixtureTable) {
  const auto rows = load_rows();
  ASSERT_GE(rows.size(), 50u) << "fixture missing or truncated";
  for (const Row& row : rows) {
    ASSERT_EQ(row.cols.size(), 11u) << "fixture line " << row.line;
    const std::string& path = row.cols[0];
    SCOPED_TRACE("line " + std::to_string(row.line) + ": " + path);
    const CgroupWorkload w = classify_cgroup_path(path);
    EXPECT_EQ(to_string(w.kind), row.cols[1]);
    EXPECT_EQ(w.name, row.cols[2]);
    EXPECT_EQ(w.id, row.cols[3]);
    EXPECT_EQ(w.runtime, row.cols[4]);
    EXPECT_EQ(w.pod_uid, row.cols[5]);
    EXPECT_EQ(w.container_id, row.cols[6]);
    EXPECT_EQ(w.qos_class, row.cols[7]);
    EXPECT_EQ(w.unit, row.cols[8]);
    EXPECT_EQ(w.user_unit, row.cols[9]);
    EXPECT_EQ(w.session, row.cols[10]);
  }
}

TEST(CgroupClassifier, KindNamesRoundTrip) {
  for (auto kind : {WorkloadKind::bare_process, WorkloadKind::systemd_service, WorkloadKind::container,
                    WorkloadKind::kubernetes_pod, WorkloadKind::user_session}) {
    EXPECT_EQ(workload_kind_from_string(to_string(kind)), kind);
  }
  EXPECT_EQ(to_string(WorkloadKind::systemd_service), "systemd");
  EXPECT_EQ(to_string(WorkloadKind::kubernetes_pod), "k8s_pod");
  EXPECT_EQ(to_string(WorkloadKind::bare_process), "process");
  EXPECT_FALSE(workload_kind_from_string("pod"));
}

// The attack: any user names a cgroup like a protected system unit (systemd-run --user
// --unit=sshd.service, or mkdir in a delegated subtree) to be taken for it.
TEST(CgroupClassifier, ALookAlikeUnitNameIsNotTheSystemUnit) {
  for (const std::string& path : std::vector<std::string>{
           "/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service", "/nhiguard-test-x/sshd.service",
           "/anything/app.slice/sshd.service", "/anything/system.slice/sshd.service",
           "/system.slice/foo.service/sub/sshd.service", "/system.slice/docker-" + kDockerId + ".scope/sshd.service",
           "/kubepods/burstable/pod5f2a9d1c-8b3e-4c7a-9e61-0d4f2b8a7c93/" + kDockerId + "/sshd.service",
           "/../../system.slice/sshd.service"}) {
    const auto w = classify_cgroup_path(path);
    EXPECT_NE(w.unit, "sshd.service") << path;
    EXPECT_FALSE(w.kind == WorkloadKind::systemd_service && w.name == "sshd.service") << path;
    EXPECT_EQ(system_unit_cgroup_name(path), "") << path;
  }
  for (const std::string path : {"/system.slice/sshd.service", "/system.slice/foo.slice/sshd.service"}) {
    const auto w = classify_cgroup_path(path);
    EXPECT_EQ(w.kind, WorkloadKind::systemd_service) << path;
    EXPECT_EQ(w.name, "sshd.service") << path;
    EXPECT_EQ(w.unit, "sshd.service") << path;
    EXPECT_EQ(system_unit_cgroup_name(path), "sshd.service") << path;
  }
  // A look-alike outside every known place is a bare process: its cgroup, not a unit, names it.
  EXPECT_EQ(classify_cgroup_path("/nhiguard-test-1234/payments.service").kind, WorkloadKind::bare_process);
  // The user's own unit is the user's, with the owner from the path.
  const auto user = classify_cgroup_path("/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service");
  EXPECT_EQ(user.kind, WorkloadKind::user_session);
  EXPECT_EQ(user.user_unit, "sshd.service");
  EXPECT_EQ(user.unit, "user@1000.service");
  ASSERT_TRUE(user.session_uid);
  EXPECT_EQ(*user.session_uid, 1000u);
}

TEST(CgroupClassifier, SystemUnitCgroupNameIsTheUnitsOwnCgroup) {
  EXPECT_EQ(system_unit_cgroup_name("/system.slice"), "system.slice");
  EXPECT_EQ(system_unit_cgroup_name("/system.slice/system-getty.slice"), "system-getty.slice");
  EXPECT_EQ(system_unit_cgroup_name("/system.slice/system-getty.slice/getty@tty1.service"), "getty@tty1.service");
  EXPECT_EQ(system_unit_cgroup_name("/init.scope"), "init.scope");
  EXPECT_EQ(system_unit_cgroup_name("/system.slice/payments.service/worker"), "");  // below the unit
  EXPECT_EQ(system_unit_cgroup_name("/nhiguard-test-1"), "");
  EXPECT_EQ(system_unit_cgroup_name("/"), "");
  EXPECT_EQ(system_unit_cgroup_name(""), "");
  EXPECT_EQ(system_unit_cgroup_name("/system.slice/.service"), "");
}

TEST(CgroupClassifier, PodUidUnderscoresBecomeDashes) {
  const auto w = classify_cgroup_path(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12345678_abcd_4ef0_9abc_0123456789ab.slice");
  EXPECT_EQ(w.kind, WorkloadKind::kubernetes_pod);
  EXPECT_EQ(w.pod_uid, "12345678-abcd-4ef0-9abc-0123456789ab");
  EXPECT_TRUE(w.container_id.empty());
}

TEST(CgroupClassifier, ContainerIdMustBe64LowercaseHex) {
  EXPECT_TRUE(is_container_id(kDockerId));
  EXPECT_FALSE(is_container_id(kDockerId.substr(1)));
  EXPECT_FALSE(is_container_id(kDockerId + "0"));
  std::string upper = kDockerId;
  upper[0] = 'A';
  EXPECT_FALSE(is_container_id(upper));
  std::string bad = kDockerId;
  bad[10] = 'g';
  EXPECT_FALSE(is_container_id(bad));
  EXPECT_FALSE(is_container_id(""));

  for (const std::string& path :
       {"/system.slice/docker-" + bad + ".scope", "/docker/" + bad,
        "/system.slice/docker-" + kDockerId.substr(2) + ".scope", "/machine.slice/libpod-" + upper + ".scope"}) {
    const auto w = classify_cgroup_path(path);
    EXPECT_NE(w.kind, WorkloadKind::container) << path;
    EXPECT_TRUE(w.container_id.empty()) << path;
  }
}

TEST(CgroupClassifier, ConmonIsNotTheContainer) {
  const auto crio = classify_cgroup_path("/machine.slice/crio-conmon-" + kDockerId + ".scope");
  EXPECT_NE(crio.kind, WorkloadKind::container);
  EXPECT_TRUE(crio.container_id.empty());
  const auto podman = classify_cgroup_path("/machine.slice/libpod-conmon-" + kDockerId + ".scope");
  EXPECT_NE(podman.kind, WorkloadKind::container);
}

TEST(CgroupClassifier, ContainerNameIsShortIdAndIdIsFull) {
  const auto w = classify_cgroup_path("/system.slice/docker-" + kDockerId + ".scope");
  EXPECT_EQ(w.kind, WorkloadKind::container);
  EXPECT_EQ(w.runtime, "docker");
  EXPECT_EQ(w.name, kDockerId.substr(0, 12));
  EXPECT_EQ(w.id, kDockerId);
}

TEST(CgroupClassifier, UserSessionCarriesTheSliceUid) {
  const auto w = classify_cgroup_path("/user.slice/user-1000.slice/session-3.scope");
  EXPECT_EQ(w.kind, WorkloadKind::user_session);
  ASSERT_TRUE(w.session_uid);
  EXPECT_EQ(*w.session_uid, 1000u);
  const auto manager = classify_cgroup_path("/user.slice/user-1001.slice/user@1001.service/app.slice/x.service");
  ASSERT_TRUE(manager.session_uid);
  EXPECT_EQ(*manager.session_uid, 1001u);
  EXPECT_FALSE(classify_cgroup_path("/user.slice/user-99999999999.slice/session-1.scope").session_uid);
}

TEST(CgroupClassifier, ProcCgroupDeletedAndNamespaceForms) {
  // Paths seen from another cgroup namespace start with "..": where they sit below the root is
  // unknown, so they name no unit; globally unique container ids still classify.
  const auto w = classify_cgroup_path("/../../system.slice/payments.service");
  EXPECT_EQ(w.kind, WorkloadKind::bare_process);
  EXPECT_EQ(w.unit, "");
  const auto c = classify_cgroup_path("/../../system.slice/docker-" + kDockerId + ".scope");
  EXPECT_EQ(c.kind, WorkloadKind::container);
  EXPECT_EQ(c.container_id, kDockerId);
  EXPECT_EQ(classify_cgroup_path("//system.slice//payments.service/").name, "payments.service");
}

TEST(CgroupClassifier, TotalOnGarbage) {
  for (std::string_view path : {"", "/", "////", "..", "/.service", "/:::", "/a:b:c", "/session-.scope",
                                "/kubepods/pod", "/kubepods.slice/kubepods-pod.slice", "\xff\xfe/\x01"}) {
    const auto w = classify_cgroup_path(path);
    EXPECT_NE(w.kind, WorkloadKind::container) << path;
    EXPECT_NE(w.kind, WorkloadKind::kubernetes_pod) << path;
  }
  const std::string huge(100000, '/');
  EXPECT_EQ(classify_cgroup_path(huge).kind, WorkloadKind::bare_process);
}
