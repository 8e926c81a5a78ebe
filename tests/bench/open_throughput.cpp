// open_throughput: cost of one open(path, O_RDONLY) + close(fd) pair, in nanoseconds.
//
// A benchmark, never a test (see tests/bench/README.md). It runs a tight loop of
//   fd = open(path, O_RDONLY); close(fd);
// for --iterations iterations, --reps times (after one untimed warm-up pass of the same length),
// and prints ONE machine-readable line on stdout:
//
//   open_throughput path=<path> iterations=<N> reps=<R> cpu=<C|-1> opens=<total opens>
//       median_ns=<median of the per-rep ns/op> min_ns=<best rep> max_ns=<worst rep>
//       reps_ns=<comma-separated per-rep ns/op>
//
// (all on one line). open and close are measured together: a probe on the open path (syscall exit
// tracepoint, audit watch) is what the comparison is about, and close is the same constant in every
// scenario; the README explains how to read the ratios. `opens` counts every successful open,
// warm-up included, so a tool's event count can be compared with it.
//
// Usage: open_throughput --path FILE [--iterations N] [--reps R] [--warmup N] [--cpu C]
// Exit codes: 0 done, 1 an open or close failed, 2 bad usage.

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
  std::string path;
  std::uint64_t iterations = 200000;
  std::uint64_t reps = 7;
  std::uint64_t warmup = 0;  // 0: same as iterations
  bool warmup_set = false;
  int cpu = -1;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "open_throughput: %s\n"
               "usage: open_throughput --path FILE [--iterations N] [--reps R] [--warmup N] "
               "[--cpu C]\n",
               why);
  std::exit(2);
}

std::uint64_t parse_u64(std::string_view flag, std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    std::string why = std::string(flag) + ": not a non-negative integer: " + std::string(text);
    usage(why.c_str());
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage((std::string(arg) + " needs a value").c_str());
      return argv[++i];
    };
    if (arg == "--path") {
      options.path = value();
    } else if (arg == "--iterations") {
      options.iterations = parse_u64(arg, value());
    } else if (arg == "--reps") {
      options.reps = parse_u64(arg, value());
    } else if (arg == "--warmup") {
      options.warmup = parse_u64(arg, value());
      options.warmup_set = true;
    } else if (arg == "--cpu") {
      options.cpu = static_cast<int>(parse_u64(arg, value()));
    } else if (arg == "-h" || arg == "--help") {
      usage("help");
    } else {
      usage(("unknown argument: " + std::string(arg)).c_str());
    }
  }
  if (options.path.empty()) usage("--path is required");
  if (options.iterations == 0) usage("--iterations must be > 0");
  if (options.reps == 0) usage("--reps must be > 0");
  if (!options.warmup_set) options.warmup = options.iterations;
  return options;
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// One pass: `count` open+close pairs. Returns false (with errno reported) on the first failure.
bool run_pass(const char* path, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "open_throughput: open %s: %s\n", path, std::strerror(errno));
      return false;
    }
    if (close(fd) != 0) {
      std::fprintf(stderr, "open_throughput: close %s: %s\n", path, std::strerror(errno));
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);

  if (options.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options.cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "open_throughput: pin to cpu %d: %s\n", options.cpu, std::strerror(errno));
      return 2;
    }
  }

  const char* path = options.path.c_str();
  std::uint64_t opens = 0;
  if (options.warmup > 0) {
    if (!run_pass(path, options.warmup)) return 1;
    opens += options.warmup;
  }

  std::vector<double> per_rep;
  per_rep.reserve(options.reps);
  for (std::uint64_t rep = 0; rep < options.reps; ++rep) {
    const std::uint64_t start = now_ns();
    if (!run_pass(path, options.iterations)) return 1;
    const std::uint64_t elapsed = now_ns() - start;
    opens += options.iterations;
    per_rep.push_back(static_cast<double>(elapsed) / static_cast<double>(options.iterations));
  }

  std::vector<double> sorted = per_rep;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  const double median = (n % 2 == 1) ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;

  std::string reps_text;
  for (std::size_t i = 0; i < per_rep.size(); ++i) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%s%.1f", i == 0 ? "" : ",", per_rep[i]);
    reps_text += buffer;
  }
  std::printf(
      "open_throughput path=%s iterations=%llu reps=%llu cpu=%d opens=%llu median_ns=%.1f "
      "min_ns=%.1f max_ns=%.1f reps_ns=%s\n",
      path, static_cast<unsigned long long>(options.iterations), static_cast<unsigned long long>(options.reps),
      options.cpu, static_cast<unsigned long long>(opens), median, sorted.front(), sorted.back(), reps_text.c_str());
  return 0;
}
