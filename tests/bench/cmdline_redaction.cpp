// Cost of command-line redaction per credential event, against a baseline in the same run.
//
// The agent redacts the opener's argv once per credential event (the kernel's copy, at most 256
// bytes) and once per /proc resolution (at most 4096 bytes). This bench runs CmdlineRedactor over a
// mix of real command lines, most with no secret (as most readers' are), some with one or several,
// one long Java command line, and compares it with copying the same argv (what the agent did
// before redaction existed: the event takes its own copy). Rounds alternate baseline and redaction
// so both see the same machine state; the median round is printed for each, with the ratio.
//
// Usage: cmdline_redaction [--rounds N] [--iterations N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "identity/cmdline_redactor.h"

namespace {

using Argv = std::vector<std::string>;

std::vector<Argv> mix() {
  std::string classpath = "/opt/app/lib/app.jar";
  for (int i = 0; i < 60; ++i) classpath += ":/opt/app/lib/dependency-" + std::to_string(i) + "-1.2.3.jar";
  return {
      {"cat", "/home/svc/.aws/credentials"},
      {"/usr/bin/python3", "/srv/app/worker.py", "--queue", "billing", "--concurrency", "4"},
      {"aws", "s3", "cp", "s3://backups/db-2026-12-03.sql.gz", "/var/backups/", "--profile", "prod"},
      {"kubectl", "get", "pods", "-n", "payments", "-o", "wide"},
      {"/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Xmx2048m", "-XX:+UseG1GC", "-cp", classpath,
       "com.example.payments.PaymentServiceApplication", "--spring.profiles.active=production"},
      {"bash", "-c", "cd /srv/app && ./bin/migrate --env production && systemctl restart app.service"},
      {"node", "/srv/web/server.js", "--port", "8080"},
      {"git", "fetch", "origin", "main"},
      {"docker", "login", "-u", "ci", "-p", "dckr_pat_2b3e36beeb386dfdaacb9b46004", "registry.example.com"},
      {"curl", "-sS", "-H", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJlMTIzNDU2Nzg5MA",
       "https://api.example.com/v1/deploy"},
      {"vault", "login", "s.6H3kYq9Lm2Xv8Rt4Zp7Wn1Bc"},
      {"psql", "postgresql://app:hunter2@db.example.com:5432/app", "-c", "select 1"},
      {"python3", "-c", "open('/home/svc/.aws/credentials').read()", "--aws-secret-access-key=SECRETVALUE1", "-H",
       "Authorization: Bearer TOKENVALUE2", "https://svc:PASSWORD3@host.example.com/"},
      {"/usr/sbin/sshd", "-D", "-o", "AuthorizedKeysCommand=/usr/bin/sss_ssh_authorizedkeys"},
      {"gcloud", "auth", "activate-service-account", "--key-file=/etc/gcp/sa.json"},
      {"terraform", "plan", "-var-file=prod.tfvars", "-out=plan.bin"},
  };
}

template <typename F>
double ns_per_argv(const std::vector<Argv>& argvs, size_t iterations, F&& f) {
  size_t sink = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < iterations; ++i) {
    for (const Argv& argv : argvs) sink += f(argv).size();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (sink == 42) std::puts("");  // keeps the work observable
  return std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(iterations * argvs.size());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nhiguard command-line redaction cost per event"};
  size_t rounds = 21, iterations = 2000;
  app.add_option("--rounds", rounds, "alternating baseline/redaction rounds")->check(CLI::PositiveNumber);
  app.add_option("--iterations", iterations, "passes over the mix per round")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  nhiguard::identity::RedactionKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i);
  const nhiguard::identity::CmdlineRedactor redactor(key);
  const auto argvs = mix();
  size_t bytes = 0;
  for (const auto& a : argvs) {
    for (const auto& s : a) bytes += s.size() + 1;
  }

  std::vector<double> copy_ns, redact_ns;
  for (size_t r = 0; r < rounds; ++r) {
    copy_ns.push_back(ns_per_argv(argvs, iterations, [](const Argv& a) { return Argv(a); }));
    redact_ns.push_back(ns_per_argv(argvs, iterations, [&](const Argv& a) { return redactor.redact(a); }));
  }
  const double baseline = median(copy_ns), redaction = median(redact_ns);
  std::printf("mix: %zu argvs, %zu bytes on average; %zu rounds x %zu passes\n", argvs.size(), bytes / argvs.size(),
              rounds, iterations);
  std::printf("baseline (copy the argv):  %8.0f ns per argv (median round)\n", baseline);
  std::printf("redaction (CmdlineRedactor::redact): %8.0f ns per argv (median round)\n", redaction);
  std::printf("ratio redaction / baseline: %.1fx; added per event: %.0f ns\n", redaction / baseline,
              redaction - baseline);
  return 0;
}
