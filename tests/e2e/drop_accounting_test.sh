#!/usr/bin/env bash
# e2e: ring-buffer drops while no agent runs are one downtime gap at the next start, apart from the
# running agent's drops. The agent runs with a 16 KiB ring and every connect reported; it is
# stopped, processes and UDP connects fill the ring nobody reads (lifecycle and egress drops, counted
# by the pinned programs), and the restarted agent reports exactly one `ringbuf_drops_downtime`
# alert whose count is the gap in status, measured from the previous agent's stop.
# Usage: drop_accounting_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-drops.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-drops-$$
sock=$tmp/agent.sock
state=$tmp/state
agent_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$state" "$tmp/policy.d"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $state
policy_dir: $tmp/policy.d
control_socket: $sock
hostname: e2e-host
event_log:
  path: $state/events.jsonl
bpf:
  pin_dir: $pin_dir
  ringbuf_bytes: 16KiB
  report_all_egress: true
rescan_interval: 1h
YAML
ctl() { "$ctl" --socket "$sock" "$@"; }
start_agent() {
  "$agent" --config "$tmp/agent.yaml" 2>> "$tmp/agent.log" > /dev/null &
  agent_pid=$!
  wait_agent_ready "$agent_pid" "$ctl" "$sock"
}
stop_agent() { kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=; }
kernel_drops() {  # the pinned drop counters (file, lifecycle, egress) summed over CPUs, read by bpftool
  bpftool -j map dump pinned "$pin_dir/nhg_counters" |
    jq '[.[] | (.formatted // .) | select(.key == 0 or .key == 1 or .key == 5) | .values[].value] | add'
}
check "agent starts" start_agent
first=$(ctl --json status)
check "status has the new drop fields" \
  jq -e '.kernel_counters | has("ringbuf_drops_downtime") and has("ringbuf_drops_egress") and has("taint_map_full")
         and has("enforcement_map_full") and has("ringbuf_drops_since_pinned") and has("downtime_gap")' <<< "$first"
stop_agent
check "the stopping agent saved its counter snapshot" jq -e '.clean_stop == true' "$state/kernel_counters.json"
at_stop=$(jq '.ringbuf_drops_file + .ringbuf_drops_process + .ringbuf_drops_egress' "$state/kernel_counters.json")
stopped_at=$(jq -r '.taken_at' "$state/kernel_counters.json")

# --- no agent: the pinned programs fill the 16 KiB ring nobody reads
for _ in $(seq 300); do /bin/true; done
bash -c 'for i in $(seq 300); do echo x > /dev/udp/127.0.0.1/9 2>/dev/null || true; done'
while_down=$(( $(kernel_drops) - at_stop ))
check "the kernel counted drops while no agent ran ($while_down)" [ "$while_down" -ge 300 ]

check "agent starts again" start_agent
status=$(ctl --json status)
gap=$(jq '.kernel_counters.ringbuf_drops_downtime' <<< "$status")
check "the downtime gap holds every drop counted while down ($gap >= $while_down)" [ "$gap" -ge "$while_down" ]
check "the gap has its egress part" jq -e '.kernel_counters.downtime_gap.egress >= 100' <<< "$status"
check "the gap runs from the previous agent's stop" \
  jq -e --arg t "$stopped_at" '.kernel_counters.downtime_gap.since == $t and
                               .kernel_counters.downtime_gap.since_what == "the previous agent'"'"'s stop"' <<< "$status"
check "running drops are apart from the gap (since_pinned = at stop + gap + running)" \
  jq -e --argjson s "$at_stop" '.kernel_counters | .ringbuf_drops_since_pinned == $s + .ringbuf_drops_downtime + .ringbuf_drops' \
  <<< "$status"
check "one downtime alert, with the gap as its count" bash -c "
  for _ in \$(seq 50); do
    n=\$(sqlite3 '$state/outbox.db' \"SELECT count(*) FROM reports WHERE type = 'alert' AND
         instr(payload, CAST('ringbuf_drops_downtime' AS BLOB)) > 0 AND instr(payload, CAST('$gap kernel event(s)' AS BLOB)) > 0\")
    [ \"\$n\" -eq 1 ] && exit 0; sleep 0.1
  done; exit 1"
check "the log names the gap" grep -q "$gap kernel event(s) dropped while no agent read the ring buffer" "$tmp/agent.log"
stop_agent

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
