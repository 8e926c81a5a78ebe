#!/usr/bin/env bash
# connect()/sendto() latency with nhiguard's cgroup egress programs attached vs without.
# Scenarios: (a) no agent; (b) the agent running, nothing enforced; (c) the agent with an active
# egress block on another cgroup (so the hooks walk the caller's cgroup ancestors on every call);
# (d) as (c) with the benchmark itself 4 cgroup levels deep. Ratios are to (a) of the same round.
# Usage (root): run_egress_bench.sh [AGENT] [BENCH]    env: ROUNDS (3), ITERATIONS (20000), BENCH_CPU (1), TOOL_CPU (0)
set -euo pipefail
agent=${1:-/work/main/build/agent/nhiguard-agent}
bench=${2:-/work/main/build/tests/bench/egress_connect_latency}
ctl=$(dirname "$agent")/nhiguardctl
rounds=${ROUNDS:-3}
iterations=${ITERATIONS:-20000}
bench_cpu=${BENCH_CPU:-1}
tool_cpu=${TOOL_CPU:-0}
cg_root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cg_top=$cg_root/nhiguard-bench-$$
tmp=$(mktemp -d /tmp/nhg-egress-bench.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-bench-egress-$$
agent_pid=

stop_agent() {
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; agent_pid=; fi
  rm -rf "$pin_dir"  # unpinning the links detaches the programs
}
cleanup() {
  echo $$ > "$cg_root/cgroup.procs" 2>/dev/null || true
  stop_agent
  for d in a/b/c/d a/b/c a/b a victim.service ""; do rmdir "$cg_top/$d" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

start_agent() {
  mkdir -p "$tmp/policy.d"
  cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $tmp/agent.sock
event_log:
  path: $tmp/events.jsonl
bpf:
  pin_dir: $pin_dir
YAML
  taskset -c "$tool_cpu" "$agent" --config "$tmp/agent.yaml" 2> "$tmp/agent.log" &
  agent_pid=$!
  for _ in $(seq 100); do "$ctl" --socket "$tmp/agent.sock" status > /dev/null 2>&1 && return 0; sleep 0.1; done
  echo "agent did not start" >&2; tail "$tmp/agent.log" >&2; exit 1
}

mkdir -p "$cg_top/victim.service" "$cg_top/a/b/c/d"
measure() {  # measure MODE [CGROUP]: prints "p50 p99"
  local line
  if [ -n "${2:-}" ]; then
    line=$(bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$2" "$bench" --mode "$1" --iterations "$iterations" --cpu "$bench_cpu")
  else
    line=$("$bench" --mode "$1" --iterations "$iterations" --cpu "$bench_cpu")
  fi
  sed -E 's/.*p50_ns=([0-9]+).*p99_ns=([0-9]+).*/\1 \2/' <<< "$line"
}

declare -A results
for round in $(seq "$rounds"); do
  for mode in tcp udp; do results[a,$mode,$round]=$(measure "$mode"); done
  start_agent
  for mode in tcp udp; do results[b,$mode,$round]=$(measure "$mode"); done
  "$ctl" --socket "$tmp/agent.sock" contain block-egress --cgroup "/nhiguard-bench-$$/victim.service" --ttl 10m --reason bench > /dev/null
  for mode in tcp udp; do results[c,$mode,$round]=$(measure "$mode"); done
  for mode in tcp udp; do results[d,$mode,$round]=$(measure "$mode" "$cg_top/a/b/c/d"); done
  stop_agent
  echo "round $round done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "connect()/sendto() latency in ns, median over $rounds round(s) of each run's percentile ($iterations calls per run)"
printf '%-34s %8s %6s %8s %6s %8s %6s %8s %6s\n' scenario tcp_p50 ratio tcp_p99 ratio udp_p50 ratio udp_p99 ratio
declare -A names=([a]="(a) no agent" [b]="(b) nhiguard, nothing enforced" [c]="(c) nhiguard, a block elsewhere" [d]="(d) as (c), caller 4 cgroups deep")
for s in a b c d; do
  row=()
  for mode in tcp udp; do
    for col in 1 2; do
      v=$(for r in $(seq "$rounds"); do cut -d' ' -f$col <<< "${results[$s,$mode,$r]}"; done | median)
      base=$(for r in $(seq "$rounds"); do cut -d' ' -f$col <<< "${results[a,$mode,$r]}"; done | median)
      row+=("$v" "$(awk -v v="$v" -v b="$base" 'BEGIN { printf "%.3f", v / b }')")
    done
  done
  printf '%-34s %8s %6s %8s %6s %8s %6s %8s %6s\n' "${names[$s]}" "${row[@]}"
done
