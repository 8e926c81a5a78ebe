#!/usr/bin/env bash
# End-to-end reporting delay: from the kernel's timestamp of a credential read to the row at the
# collector, through the real agent (outbox, mTLS stream) and the real nhiguard-collector (SQLite)
# on loopback. Two scenarios of COUNT reads each: paced (RATE reads/s, the usual case) and burst
# (back to back: the outbox and the send window under load). Prints p50/p90/p99/max of
# kernel -> outbox and kernel -> collector for each (see collector_delay.cpp).
# Usage (root): run_collector_delay_bench.sh [BUILD_DIR]    env: COUNT (300), RATE (50), KEEP_TMP
set -euo pipefail
build=${1:-/work/main/build}
agent=$build/agent/nhiguard-agent
ctl_bin=$build/agent/nhiguardctl
collector_bin=$build/collector/nhiguard-collector
tool=$build/tests/bench/collector_delay
count=${COUNT:-300}
rate=${RATE:-50}
tmp=$(mktemp -d /tmp/nhg-delay-bench.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-bench-delay-$$
port=$(( 20000 + $$ % 20000 ))
agent_pid=
collector_pid=

cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" > /dev/null 2>&1; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.1; done
}
status() { "$ctl_bin" --socket "$tmp/agent.sock" --json status; }
connected() { [ "$(status | jq -r .collector.state)" = connected ]; }
drained() { [ "$(status | jq -r .collector.outbox.pending_reports)" = 0 ]; }

"$ctl_bin" certs init "$tmp/pki" > /dev/null
mkdir -p "$tmp/home/.aws"
printf '[default]\naws_access_key_id = AKIABENCHDELAY\n' > "$tmp/home/.aws/credentials"
cred=$tmp/home/.aws/credentials
mkdir -p "$tmp/policy.d"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $tmp/agent.sock
event_log:
  path: $tmp/state/events.jsonl
bpf:
  pin_dir: $pin_dir
collector:
  address: 127.0.0.1:$port
  pki: $tmp/pki
credentials:
  - path: $cred
    class: aws
YAML
"$collector_bin" --listen "127.0.0.1:$port" --db "sqlite:$tmp/collector.db" --pki "$tmp/pki" > "$tmp/collector.log" 2>&1 &
collector_pid=$!
"$agent" --config "$tmp/agent.yaml" > "$tmp/agent.log" 2>&1 &
agent_pid=$!
wait_for 20 connected || { echo "the agent did not connect"; tail -5 "$tmp/agent.log" "$tmp/collector.log"; exit 1; }
outbox=$(status | jq -r .collector.outbox.outbox_id)

echo "# $0 $* (COUNT=$count RATE=$rate) on $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
run_scenario() {  # run_scenario NAME DELAY_BETWEEN_READS
  local since; since=$(status | jq -r .collector.outbox.last_sequence)
  local start; start=$(date +%s%N)
  for _ in $(seq "$count"); do
    cat "$cred" > /dev/null
    [ "$2" = 0 ] || sleep "$2"
  done
  wait_for 60 drained || { echo "reports still pending after 60 s"; exit 1; }
  echo "## $1: $count reads in $(( ($(date +%s%N) - start) / 1000000 )) ms"
  "$tool" --db "$tmp/collector.db" --outbox "$outbox" --since-seq "$since"
}
run_scenario "paced ($rate/s)" "$(awk -v r="$rate" 'BEGIN { printf "%.4f", 1 / r }')"
run_scenario "burst" 0
