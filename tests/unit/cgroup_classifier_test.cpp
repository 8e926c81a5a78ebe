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
    ASSERT_EQ(row.cols.size(), 9u) << "fixture line " << row.line;
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

TEST(CgroupClassifier, TestCgroupAnywhereIsAService) {
  const auto w = classify_cgroup_path("/nhiguard-test-1234/payments.service");
  EXPECT_EQ(w.kind, WorkloadKind::systemd_service);
  EXPECT_EQ(w.name, "payments.service");
  EXPECT_EQ(w.unit, "payments.service");
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

  for (const std::string& path : {"/system.slice/docker-" + bad + ".scope", "/docker/" + bad,
                                  "/system.slice/docker-" + kDockerId.substr(2) + ".scope",
                                  "/machine.slice/libpod-" + upper + ".scope"}) {
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
  // Paths seen from another cgroup namespace start with "..": the names after still classify.
  const auto w = classify_cgroup_path("/../../system.slice/payments.service");
  EXPECT_EQ(w.kind, WorkloadKind::systemd_service);
  EXPECT_EQ(w.name, "payments.service");
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
