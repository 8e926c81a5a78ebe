#!/usr/bin/env bash
# Idle cost of the agent: CPU time and wake-ups of a running agent with nothing happening, connected
# to a real collector (mTLS on loopback), sampled from /proc/PID/stat (utime + stime of every thread)
# and /proc/PID/task/*/status (context switches) over DURATION seconds after a settle time. Prints
# one line per agent: % of one core, context switches per second, RSS, and the processes the host
# started meanwhile (/proc/stat `processes`: every fork is a fork and an exit record the agent
# decodes, and most are an exec too; on a busy host that, not the idle loop, is most of the cost);
# and, with a baseline agent, the ratio. Not a test: the numbers depend on the machine (the target on the development VMs is
# <= 0.1 % of a core).
#
# Usage (root): run_idle_cpu_bench.sh [AGENT [BASELINE_AGENT]]
#   AGENT           default: build/agent/nhiguard-agent (nhiguardctl and nhiguard-collector are always
#                   taken from the build: NHIGUARD_BUILD_DIR, default ./build)
#   BASELINE_AGENT  optional: another nhiguard-agent binary measured the same way, in the same run
# Knobs: DURATION (60 s), SETTLE (5 s), KEEP_TMP.
set -euo pipefail
build=${NHIGUARD_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
agent=${1:-$build/agent/nhiguard-agent}
baseline=${2:-}
duration=${DURATION:-60}
settle=${SETTLE:-5}
for f in "$agent" ${baseline:+"$baseline"}; do [ -x "$f" ] || { echo "not executable: $f" >&2; exit 2; }; done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
measured=$agent
agent=$build/agent/nhiguard-agent  # collector_env.sh takes nhiguardctl and the collector beside it
# shellcheck source=../e2e/lib/collector_env.sh
source "$(dirname "$0")/../e2e/lib/collector_env.sh"  # PKI, collector, agent config; env_cleanup
trap env_cleanup EXIT
clk_tck=$(getconf CLK_TCK)

forks() { awk '/^processes/ {print $2}' /proc/stat; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads
thread_ticks() {  # one line per thread: "tid comm ticks" (comm has no spaces in the agent's threads)
  for stat in /proc/"$1"/task/*/stat; do
    awk '{sub(/^[0-9]+ \(/, ""); sub(/\) /, " "); print $1, $13 + $14}' "$stat" 2>/dev/null |
      sed "s|^|$(basename "$(dirname "$stat")") |"
  done
}
switches() {  # voluntary + involuntary context switches, summed over the threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n}'
}

measure() {  # measure NAME BINARY -> prints "NAME pct switches/s rss_kb"; sets last_pct
  agent=$2
  start_agent
  wait_for 15 connected || { echo "agent did not connect to the collector" >&2; tail -20 "$tmp/agent.log" >&2; exit 1; }
  sleep "$settle"
  local t0 c0 s0 f0 t1 c1 s1 f1 rss
  t0=$(date +%s.%N); c0=$(cpu_ticks "$agent_pid"); s0=$(switches "$agent_pid"); f0=$(forks)
  thread_ticks "$agent_pid" >"$tmp/threads0"
  sleep "$duration"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$agent_pid"); s1=$(switches "$agent_pid"); f1=$(forks)
  thread_ticks "$agent_pid" >"$tmp/threads1"
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
  kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=
  last_pct=$(awk -v c="$((c1 - c0))" -v hz="$clk_tck" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.3f", 100 * c / hz / (t1 - t0)}')
  local rate host
  rate=$(awk -v s="$((s1 - s0))" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", s / (t1 - t0)}')
  host=$(awk -v f="$((f1 - f0))" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", f / (t1 - t0)}')
  printf '%-9s %6s %% of a core  %7s switches/s  %6s kB RSS  host: %6s processes/s  (%s)\n' "$1" "$last_pct" \
    "$rate" "$rss" "$host" "$2"
  # Where the time went, by thread (the event loop is the agent's main thread, named after it).
  join <(sort "$tmp/threads0") <(sort "$tmp/threads1") |
    awk -v hz="$clk_tck" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
      '$5 - $3 > 0 {printf "  thread %-16s %6.3f %% of a core\n", $2, 100 * ($5 - $3) / hz / t}' | sort -k3 -rn
}

echo "command: DURATION=$duration $0 $measured${baseline:+ $baseline}"
echo "[bench] $(nproc) CPUs, ${duration}s per agent after ${settle}s, idle with the collector connected, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start_collector
measure agent "$measured"
agent_pct=$last_pct
if [ -n "$baseline" ]; then
  rm -rf "$tmp/state"  # each agent starts from an empty state directory
  measure baseline "$baseline"
  awk -v a="$agent_pct" -v b="$last_pct" 'BEGIN {if (b > 0) printf "agent / baseline: %.3f\n", a / b}'
fi
