#!/usr/bin/env bash
# Trigger -> enforcement latency of an agent-decided action (see decision_latency.cpp): the real
# agent runs with an enforce policy in which a test service is not an allowed reader of a planted
# credential; every read by the service is decided as block_egress of its cgroup, measured until
# the service's next datagram is refused, then rolled back through nhiguardctl.
#
# Usage (root): run_decision_bench.sh [AGENT [NHIGUARDCTL [DECISION_LATENCY]]]
# Knobs: ITERATIONS (200), TOOL_CPU (0: the agent), BENCH_CPU (1: the reader and the bench), KEEP_TMP.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib/support.sh"  # remove_test_cgroups, cgroup2_root
build=${NHIGUARD_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
agent=${1:-$build/agent/nhiguard-agent}
ctl=${2:-$build/agent/nhiguardctl}
bench=${3:-$build/tests/bench/decision_latency}
iterations=${ITERATIONS:-200}
tool_cpu=${TOOL_CPU:-0}
bench_cpu=${BENCH_CPU:-1}
for f in "$agent" "$ctl" "$bench"; do [ -x "$f" ] || { echo "not executable: $f" >&2; exit 2; }; done
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }

tmp=$(mktemp -d /tmp/nhg-decision-bench.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-bench-decision-$$
cg_root=$(cgroup2_root)
test_top "nhiguard-bench-$$"
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  remove_test_top
  rm -rf "$pin_dir"
  [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/policy.d" "$tmp/state" "$tmp/creds"
make_test_cgroups .
printf 'token = BENCH-%s\n' "$$" > "$tmp/creds/aws"
cat > "$tmp/policy.d/10-bench.yaml" <<YAML
version: 1
defaults:
  ttl: 10m
rate_limit:
  max_actions: 100000
  window: 1m
credentials:
  - {path: $tmp/creds/aws, class: aws, readers: [{unit: payments.service}]}
rules:
  - {name: reader-enforce, trigger: unexpected_reader, confidence: high, mode: enforce, response: block_egress}
YAML
"$ctl" policy check "$tmp/policy.d/10-bench.yaml" > /dev/null
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $tmp/agent.sock
event_log:
  path: $tmp/state/events.jsonl
  max_bytes: 0
bpf:
  pin_dir: $pin_dir
YAML
taskset -c "$tool_cpu" "$agent" --config "$tmp/agent.yaml" 2> "$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 100); do "$ctl" --socket "$tmp/agent.sock" status > /dev/null 2>&1 && break; sleep 0.1; done
"$ctl" --socket "$tmp/agent.sock" status > /dev/null || { echo "agent did not start" >&2; tail -20 "$tmp/agent.log" >&2; exit 1; }

echo "[bench] $(nproc) CPUs, agent on CPU $tool_cpu, reader on CPU $bench_cpu, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "command: ITERATIONS=$iterations $0 $agent $ctl $bench"
taskset -c "$bench_cpu" "$bench" --cgroup-parent "$cg_top" --credential "$tmp/creds/aws" \
  --events "$tmp/state/events.jsonl" --ctl "$ctl" --socket "$tmp/agent.sock" \
  --blocks-map "$pin_dir/nhg_egress_blocks" --iterations "$iterations"
echo "[bench] done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
