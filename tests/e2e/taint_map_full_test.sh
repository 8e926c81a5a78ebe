#!/usr/bin/env bash
# e2e: a full taint map is counted in the kernel and alerted by the agent. The pinned nhg_taint is
# filled to its 32768 entries (keys above any pid, one bpftool batch), a credential is read, and
# the agent turns the rising NHG_CTR_TAINT_MAP_FULL into an error log line and one `taint_map_full`
# alert in its outbox; status shows the count.
# Usage: taint_map_full_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-taint.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-taint-$$
sock=$tmp/agent.sock
state=$tmp/state
agent_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$state" "$tmp/policy.d" "$tmp/home/.aws"
cred=$tmp/home/.aws/credentials
printf '[default]\naws_access_key_id = AKIATAINTFULL\n' > "$cred"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $state
policy_dir: $tmp/policy.d
control_socket: $sock
hostname: e2e-host
event_log:
  path: $state/events.jsonl
bpf:
  pin_dir: $pin_dir
rescan_interval: 1h
credentials:
  - path: $cred
    class: aws
YAML
ctl() { "$ctl" --socket "$sock" "$@"; }
"$agent" --config "$tmp/agent.yaml" 2>> "$tmp/agent.log" > /dev/null &
agent_pid=$!
check "agent starts" wait_agent_ready "$agent_pid" "$ctl" "$sock"

# struct nhg_taint is 56 bytes; keys from 0x40000000 up never collide with a pid (pid_max <= 2^22).
value=$(printf '01 %.0s' 1; printf '00 %.0s' $(seq 55))
: > "$tmp/fill.batch"
for i in $(seq 0 32767); do
  k=$((0x40000000 + i))
  printf 'map update pinned %s key %d %d %d %d value %s\n' "$pin_dir/nhg_taint" \
    $((k & 255)) $(((k >> 8) & 255)) $(((k >> 16) & 255)) $(((k >> 24) & 255)) "$value" >> "$tmp/fill.batch"
done
check "the taint map takes its 32768 entries" bash -c "bpftool batch file '$tmp/fill.batch' > /dev/null 2>&1"
cat "$cred" > /dev/null

# The agent checks its counters every 5 s.
check "one taint_map_full alert in the outbox" bash -c "
  for _ in \$(seq 150); do
    n=\$(sqlite3 '$state/outbox.db' \"SELECT count(*) FROM reports WHERE type = 'alert' AND
         instr(payload, CAST('taint_map_full' AS BLOB)) > 0\")
    [ \"\$n\" -ge 1 ] && exit 0; sleep 0.1
  done; exit 1"
check "the log says the taint map is full" grep -q "could not record taint: nhg_taint (32768 processes) is full" "$tmp/agent.log"
check "status counts it" bash -c "'$ctl' --socket '$sock' --json status | jq -e '.kernel_counters.taint_map_full >= 1'"
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
