// Collector ingest rate: N simulated agents on loopback stream credential-access reports to a real
// nhiguard-collector process (SQLite store, WAL, synchronous=FULL) over the real protocol with real
// certificates, each agent keeping a window of unacked reports in flight as the agent does.
//
//   collector_ingest --collector PATH [--agents 1,8] [--reports 5000] [--window 256] [--rounds 3]
//                    [--collector-cpu 0] [--load-cpu 1] [--deadline-s 120]
//
// Per scenario and round: a fresh PKI-verified collector on 127.0.0.1 (port 0) with an empty
// database, pinned to one CPU; the agents connect and say hello (not timed); then the clock runs
// from the first report sent to the last ack received. Printed per scenario (median over rounds):
// events/s (reports acked per second), ratio to the 1-agent mTLS baseline of the same run, and the
// report -> durable-ack delay p50/p99 (from the write of a report to the ack that covers it, i.e.
// transport + group commit + fsync). Scenarios: each --agents count with mTLS, and the largest with
// plaintext (--insecure) to show what TLS costs. Bounded: each scenario stops at --deadline-s.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "collector_test_client.h"
#include "pki/fleet_pki.h"

namespace {

using namespace nhiguard;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string collector;
  std::vector<int> agents = {1, 8};
  uint64_t reports = 5000;
  uint32_t window = 256;
  int rounds = 3;
  int collector_cpu = 0;
  int load_cpu = 1;
  int deadline_s = 120;
};

void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// A realistic report: a credential access with its process and workload, ~600 bytes on the wire.
std::string report_bytes(uint64_t sequence, const std::string& agent) {
  v1::AgentMessage message;
  auto* r = message.mutable_report();
  r->set_sequence(sequence);
  r->set_created_at_unix_ns(std::chrono::system_clock::now().time_since_epoch().count());
  auto* a = r->mutable_credential_access();
  a->set_event_id(fmt::format("{}-{:012}", agent, sequence));
  a->set_time_unix_ns(r->created_at_unix_ns());
  auto* c = a->mutable_credential();
  c->set_id(3);
  c->set_credential_class(v1::CREDENTIAL_CLASS_AWS);
  c->set_path("/root/.aws/credentials");
  c->set_inode(10953933);
  c->set_device_major(254);
  c->set_match("inode");
  a->set_access("read");
  a->set_syscall("openat");
  a->set_requested_path(".aws/credentials");
  auto* p = a->mutable_process();
  p->set_pid(4048);
  p->set_tid(4048);
  p->set_ppid(4047);
  p->set_start_time_boot_ns(4638473412);
  p->set_comm("cat");
  p->set_exe("/usr/bin/cat");
  p->set_exe_sha256("7d3b1f5e9c2a4b6d8e0f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b");
  p->add_cmdline("cat");
  p->add_cmdline(".aws/credentials");
  p->set_session_id(311);
  p->set_resolved_from_proc(true);
  auto* anc = p->add_ancestry();
  anc->set_pid(4047);
  anc->set_comm("bash");
  anc->set_exe("/usr/bin/bash");
  auto* w = a->mutable_workload();
  w->set_kind(v1::WORKLOAD_KIND_SYSTEMD);
  w->set_name("payments.service");
  w->set_id("payments.service");
  w->set_unit("payments.service");
  w->set_cgroup_path("/system.slice/payments.service");
  w->set_cgroup_id(8123);
  w->set_uri("spiffe://nhiguard.local/host/" + agent + "/systemd/payments.service");
  return message.SerializeAsString();
}

struct AgentResult {
  uint64_t acked = 0;
  std::vector<double> delays_us;
  std::string error;
};

// One simulated agent: hello, then a pipelined stream (one write and one read in flight, at most
// `window` reports unacked), until every report is acked or the deadline passes.
void run_agent(const std::shared_ptr<grpc::Channel>& channel, const std::string& agent, const Options& o,
               std::atomic<int>& ready, std::atomic<bool>& go, std::chrono::system_clock::time_point deadline,
               AgentResult& out) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(deadline);
  grpc::CompletionQueue queue;
  auto call = stub.PrepareCall(&context, "/nhiguard.v1.AgentService/Connect", &queue);
  enum Tag : intptr_t { kStart = 1, kWrite, kRead, kDone, kFinish };
  void* tag;
  bool ok;
  auto next = [&](Tag want) { return queue.Next(&tag, &ok) && ok && reinterpret_cast<intptr_t>(tag) == want; };
  auto to_buffer = [](const std::string& bytes) {
    grpc::Slice slice(bytes);
    return grpc::ByteBuffer(&slice, 1);
  };
  auto parse = [](grpc::ByteBuffer& buffer, v1::CollectorMessage& message) {
    std::vector<grpc::Slice> slices;
    buffer.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return message.ParseFromString(bytes);
  };
  call->StartCall(reinterpret_cast<void*>(kStart));
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(agent);
  hello.mutable_hello()->set_outbox_id("bench-" + agent);
  hello.mutable_hello()->set_mode(v1::MODE_POLICY);
  grpc::ByteBuffer in;
  v1::CollectorMessage message;
  bool hello_ok = next(kStart);
  if (hello_ok) {
    call->Write(to_buffer(hello.SerializeAsString()), reinterpret_cast<void*>(kWrite));
    hello_ok = next(kWrite);
  }
  if (hello_ok) {
    call->Read(&in, reinterpret_cast<void*>(kRead));
    hello_ok = next(kRead) && parse(in, message) && message.has_welcome();
  }
  ++ready;
  if (!hello_ok) {
    out.error = agent + ": no welcome";
    context.TryCancel();
  }
  while (!go) std::this_thread::sleep_for(std::chrono::microseconds(200));

  std::vector<Clock::time_point> sent(o.reports + 1);
  uint64_t written = 0;
  bool write_pending = false, read_pending = false;
  while (hello_ok && out.acked < o.reports) {
    if (!write_pending && written < o.reports && written - out.acked < o.window) {
      ++written;
      sent[written] = Clock::now();
      call->Write(to_buffer(report_bytes(written, agent)), reinterpret_cast<void*>(kWrite));
      write_pending = true;
    }
    if (!read_pending) {
      call->Read(&in, reinterpret_cast<void*>(kRead));
      read_pending = true;
    }
    if (!queue.Next(&tag, &ok) || !ok) {
      out.error = fmt::format("{}: stream ended at ack {}", agent, out.acked);
      break;
    }
    if (reinterpret_cast<intptr_t>(tag) == kWrite) {
      write_pending = false;
    } else if (reinterpret_cast<intptr_t>(tag) == kRead) {
      read_pending = false;
      if (parse(in, message) && message.has_ack()) {
        const auto now = Clock::now();
        const uint64_t through = std::min<uint64_t>(message.ack().acked_through_sequence(), written);
        for (uint64_t s = out.acked + 1; s <= through; ++s)
          out.delays_us.push_back(std::chrono::duration<double, std::micro>(now - sent[s]).count());
        out.acked = std::max(out.acked, through);
      }
    }
  }
  // Drain: a pending write and read must complete before Finish.
  if (write_pending) queue.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(kDone));
  queue.Next(&tag, &ok);
  if (read_pending) {
    context.TryCancel();
    queue.Next(&tag, &ok);
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(kFinish));
  while (queue.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) != kFinish) {
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

struct Measurement {
  double events_per_s = 0;
  double p50_us = 0, p99_us = 0;
  uint64_t acked = 0, expected = 0;
};

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

std::optional<Measurement> run_scenario(const Options& o, int agents, bool insecure, const std::string& dir) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  pki::InitOptions init;
  init.dir = dir + "/pki";
  init.hostname = "bench-collector";
  for (int i = 0; i < agents; ++i) init.agents.push_back(fmt::format("agent-{:03}", i));
  if (auto ok = pki::init_pki(init); !ok) {
    fmt::print(stderr, "pki: {}\n", ok.error().message);
    return std::nullopt;
  }
  const std::string port_file = dir + "/port";
  const pid_t child = fork();
  if (child == 0) {
    pin_to(o.collector_cpu);
    const std::string db = "sqlite:" + dir + "/collector.db";
    const std::string log = dir + "/collector.log";
    freopen(log.c_str(), "w", stderr);
    freopen(log.c_str(), "a", stdout);
    std::vector<const char*> argv = {o.collector.c_str(), "--listen", "127.0.0.1:0", "--db", db.c_str(), "--port-file",
                                     port_file.c_str(), "--log-level", "warn",
                                     // the ingest rate is measured, not the per-agent limit
                                     "--max-reports-per-second", "0"};
    const std::string pki_dir = init.dir;
    if (insecure) {
      argv.push_back("--insecure");
    } else {
      argv.push_back("--pki");
      argv.push_back(pki_dir.c_str());
    }
    argv.push_back(nullptr);
    execv(o.collector.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(port_file);
    in >> port;
  }
  std::optional<Measurement> result;
  if (port != 0) {
    const std::string address = fmt::format("127.0.0.1:{}", port);
    const auto deadline = Clock::now() + std::chrono::seconds(o.deadline_s);
    const auto wall_deadline = std::chrono::system_clock::now() + std::chrono::seconds(o.deadline_s);
    std::vector<AgentResult> results(agents);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    for (int i = 0; i < agents; ++i) {
      const std::string name = fmt::format("agent-{:03}", i);
      auto channel = testing::collector_channel(address, init.dir, "agents/" + name + "/agent", insecure);
      threads.emplace_back([&, channel, name, i] {
        pin_to(o.load_cpu);
        run_agent(channel, name, o, ready, go, wall_deadline, results[i]);
      });
    }
    while (ready < agents && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto start = Clock::now();
    go = true;
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    Measurement m;
    std::vector<double> delays;
    for (auto& r : results) {
      if (!r.error.empty()) fmt::print(stderr, "  {}\n", r.error);
      m.acked += r.acked;
      delays.insert(delays.end(), r.delays_us.begin(), r.delays_us.end());
    }
    m.expected = static_cast<uint64_t>(agents) * o.reports;
    m.events_per_s = static_cast<double>(m.acked) / seconds;
    m.p50_us = percentile(delays, 0.50);
    m.p99_us = percentile(delays, 0.99);
    result = m;
  } else {
    fmt::print(stderr, "collector did not start; see {}/collector.log\n", dir);
  }
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"collector ingest rate with N simulated agents on loopback"};
  app.add_option("--collector", o.collector, "nhiguard-collector binary")->required();
  app.add_option("--agents", o.agents, "agent counts to measure (the first is the baseline)")->delimiter(',');
  app.add_option("--reports", o.reports, "reports per agent")->check(CLI::Range(1u, 10000000u));
  app.add_option("--window", o.window, "unacked reports in flight per agent")->check(CLI::Range(1u, 100000u));
  app.add_option("--rounds", o.rounds, "rounds (median reported)")->check(CLI::Range(1, 20));
  app.add_option("--collector-cpu", o.collector_cpu, "CPU the collector is pinned to (-1: none)");
  app.add_option("--load-cpu", o.load_cpu, "CPU the load generator is pinned to (-1: none)");
  app.add_option("--deadline-s", o.deadline_s, "per-scenario time limit")->check(CLI::Range(1, 3600));
  CLI11_PARSE(app, argc, argv);
  if (o.agents.empty()) o.agents = {1};
  signal(SIGPIPE, SIG_IGN);

  struct Scenario {
    int agents;
    bool insecure;
  };
  std::vector<Scenario> scenarios;
  for (int n : o.agents) scenarios.push_back({n, false});
  scenarios.push_back({*std::max_element(o.agents.begin(), o.agents.end()), true});

  char tmpl[] = "/tmp/nhg-collector-bench.XXXXXX";
  if (!mkdtemp(tmpl)) return 1;
  const std::string root = tmpl;
  std::vector<std::vector<Measurement>> runs(scenarios.size());
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t i = 0; i < scenarios.size(); ++i) {
      // Every other round in reverse order, so slow drift of the machine spreads over all scenarios.
      const size_t s = round % 2 == 0 ? i : scenarios.size() - 1 - i;
      auto m = run_scenario(o, scenarios[s].agents, scenarios[s].insecure, root + "/run");
      if (!m) return 1;
      fmt::print(stderr, "round {} {} agent(s) {}: {:.0f} events/s, acked {}/{}, p50 {:.0f} us, p99 {:.0f} us\n",
                 round + 1, scenarios[s].agents, scenarios[s].insecure ? "plaintext" : "mTLS", m->events_per_s,
                 m->acked, m->expected, m->p50_us, m->p99_us);
      runs[s].push_back(*m);
    }
  }
  std::filesystem::remove_all(root);

  auto median = [](std::vector<Measurement> v, auto field) {
    std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) { return a.*field < b.*field; });
    return v[v.size() / 2].*field;
  };
  const double baseline = median(runs[0], &Measurement::events_per_s);
  fmt::print(
      "collector ingest, SQLite (WAL, synchronous=FULL), collector on CPU {}, {} reports/agent, window {}, "
      "median of {} round(s)\n",
      o.collector_cpu, o.reports, o.window, o.rounds);
  fmt::print("{:<28} {:>12} {:>9} {:>14} {:>14} {:>10}\n", "scenario", "events/s", "ratio", "ack p50 (us)",
             "ack p99 (us)", "complete");
  bool complete = true;
  for (size_t s = 0; s < scenarios.size(); ++s) {
    const double rate = median(runs[s], &Measurement::events_per_s);
    bool all = std::all_of(runs[s].begin(), runs[s].end(), [](const auto& m) { return m.acked == m.expected; });
    complete = complete && all;
    fmt::print("{:<28} {:>12.0f} {:>9.2f} {:>14.0f} {:>14.0f} {:>10}\n",
               fmt::format("{} agent(s), {}", scenarios[s].agents, scenarios[s].insecure ? "plaintext" : "mTLS"), rate,
               rate / baseline, median(runs[s], &Measurement::p50_us), median(runs[s], &Measurement::p99_us),
               all ? "yes" : "NO");
  }
  return complete ? 0 : 1;
}
