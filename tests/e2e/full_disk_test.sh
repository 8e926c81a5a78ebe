#!/usr/bin/env bash
# e2e fault: the agent's state_dir is a small tmpfs, filled to ENOSPC just before a policy-driven
# containment. The block still holds (a connect from the contained cgroup fails: enforcement comes
# before the ledger row), an `unrecorded_action` alert is raised (agent log, status, and the
# collector once the outbox takes writes again), and the ledger row appears once space returns,
# exactly once, still active. Rolling back afterwards restores egress.
# Usage: full_disk_test.sh AGENT SRC_DIR
set -euo pipefail
agent=$1
source "$(dirname "$0")/lib/collector_env.sh"
netns=nhg-full-$$
host_if=nhgf$$
n=$(( $$ % 200 + 20 ))
remote=10.204.$n.2
remote_port=18557
state=$tmp/state

cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  agent_pid=
  stop_remote "$netns" "$host_if"
  mountpoint -q "$state" && umount "$state"
  env_cleanup
}
trap cleanup EXIT

mkdir -p "$state"
mount -t tmpfs -o size=6m,mode=0700 nhiguard-e2e-full "$state"
start_remote "$netns" "$host_if" "10.204.$n" "$remote_port" "$tmp/received"
make_test_cgroups intruder.service
cat > "$tmp/policy.d/10-full.yaml" <<YAML
version: 1
defaults:
  ttl: 10m
credentials:
  - {path: $cred, class: aws, readers: [{unit: no-reader-is-expected.service}]}
rules:
  - name: reader-enforce
    trigger: unexpected_reader
    confidence: high
    mode: enforce
    response: block_egress
    when: {credential_class: [aws]}
YAML
start_collector
start_agent
check "the agent reaches the collector" wait_for 15 connected
send_from() { run_in intruder.service bash -c "exec 3<>/dev/tcp/$remote/$remote_port && printf x >&3" 2>/dev/null; }
blocked() { ! send_from; }
check "before: the service connects out" send_from
ledger_rows() { sqlite3 -batch -noheader "file:$state/ledger.db?mode=ro" "SELECT count(*) FROM actions WHERE state = 2"; }

# --- fill the state_dir to ENOSPC, then the trigger
dd if=/dev/zero of="$state/filler" bs=4k 2> /dev/null || true
check "the state_dir is full" bash -c "! dd if=/dev/zero of='$state/probe' bs=4k count=1 2>/dev/null"
run_in intruder.service cat "$cred" > /dev/null
check "the policy decided to contain (agent log)" wait_for 10 grep -q "decision contain.*reader-enforce" "$tmp/agent.log"
check "the ledger refused the row: an unrecorded_action log line says what failed and what the agent does" \
  wait_for 10 grep -q "unrecorded action: rb_.*block_egress.*could not record it.*enforcement stays in force" "$tmp/agent.log"
check "the block holds: a connect from the contained cgroup fails" blocked
check "the block is in the kernel" bash -c "bpftool -j map dump pinned '$pin_dir/nhg_egress_blocks' | jq -e 'length == 1'"
check "status lists the unrecorded action with the ledger's error" bash -c \
  "'$ctl_bin' --socket '$sock' --json status | jq -e '.unrecorded_actions | length == 1 and (.[0].action == \"block_egress\")
     and (.[0].state == \"active\") and (.[0].ledger_error | test(\"full\"))'"
handle=$(ctl --json status | jq -r '.unrecorded_actions[0].handle')
check "nhiguardctl actions shows it meanwhile" bash -c "'$ctl_bin' --socket '$sock' --json actions | jq -e --arg h '$handle' 'any(.[]; .handle == \$h and .state == \"active\")'"
check "no ledger row yet" [ "$(ledger_rows)" = 0 ]
sleep 2  # a few sweeps retry against the full disk
check "still refused after retries: still in force, still unrecorded" bash -c \
  "[ \"\$('$ctl_bin' --socket '$sock' --json status | jq '.unrecorded_actions | length')\" = 1 ]"

# --- space returns: the row appears (once), the alert reaches the collector, the block still holds
rm -f "$state/filler"
check "the row appears once space returns" wait_for 10 bash -c "[ \"\$(sqlite3 -batch -noheader 'file:$state/ledger.db?mode=ro' \"SELECT count(*) FROM actions WHERE handle = '$handle' AND state = 2\")\" = 1 ]"
check "status no longer lists it" bash -c "'$ctl_bin' --socket '$sock' --json status | jq -e '.unrecorded_actions | length == 0'"
check "recorded exactly once (one history row)" bash -c \
  "[ \"\$(sqlite3 -batch -noheader 'file:$state/ledger.db?mode=ro' \"SELECT count(*) FROM action_history WHERE handle = '$handle'\")\" = 1 ]"
check "the agent logged that it was recorded" grep -q "unrecorded action recorded: $handle" "$tmp/agent.log"
check "the block still holds" blocked
check "the unrecorded_action alert reached the collector" wait_for 15 bash -c \
  "[ \"\$(sqlite3 '$collector_db' \"SELECT count(*) FROM reports WHERE kind = 'alert' AND instr(body, CAST('unrecorded_action' AS BLOB)) > 0 AND instr(body, CAST('$handle' AS BLOB)) > 0\")\" -ge 1 ]"
check "the collector has the action" wait_for 15 bash -c \
  "[ \"\$(sqlite3 '$collector_db' \"SELECT count(*) FROM actions WHERE handle = '$handle' AND state = 2\")\" = 1 ]"
check "rollback restores egress" bash -c "'$ctl_bin' --socket '$sock' rollback '$handle' && sleep 0.2"
check "rolled back: the service connects" send_from

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -40 "$tmp/agent.log"
  exit 1
fi
echo "e2e full disk: all checks passed"
