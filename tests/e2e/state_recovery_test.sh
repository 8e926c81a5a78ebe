#!/usr/bin/env bash
# e2e: damaged state never stops detection and never moves what the kernel enforces.
# - credential_ids.json truncated while a deny is pinned: the restarted agent rebuilds the ids from
#   the pinned kernel map, ids do not move, and the deny still kills readers of the file it was made
#   for and of no other (a renumbering would swap the two files' ids here).
# - ledger.db (a damaged page: the integrity check fails) and outbox.db (a damaged header: not a
#   database) at start: the agent runs, both are kept under a timestamped name, fresh ones are made,
#   `state_quarantined` alerts are in the new outbox, and the pinned deny that lost its ledger row is
#   reported as `unowned_kernel_state` and still holds.
# Usage: state_recovery_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-state.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-state-$$
cg_root=$(cgroup2_root)
cg_top=$cg_root/nhiguard-test-$$
sock=$tmp/agent.sock
state=$tmp/state
agent_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  remove_test_cgroups "$cg_top"
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "$cg_root" ] || { echo "no cgroup2 mount"; exit 1; }

# Two credentials, a listed first and b second in the configuration. Only b exists at the first
# start, so b is numbered before a; numbered afresh, a would come first and take b's id.
cred_a=$tmp/home/a/.aws/credentials
cred_b=$tmp/home/b/.aws/credentials
mkdir -p "$(dirname "$cred_a")" "$(dirname "$cred_b")" "$state" "$tmp/policy.d"
printf '[default]\naws_access_key_id = AKIAE2ESTATEB%s\n' "$$" > "$cred_b"
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
  - path: $cred_a
    class: aws
  - path: $cred_b
    class: aws
YAML
ctl() { "$ctl" --socket "$sock" "$@"; }
start_agent() {
  "$agent" --config "$tmp/agent.yaml" 2>> "$tmp/agent.log" &
  agent_pid=$!
  wait_agent_ready "$agent_pid" "$ctl" "$sock"
}
stop_agent() {
  kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=
}
mkdir -p "$cg_top/payments.service"
run_in() {  # run_in CGROUP COMMAND...
  local cg=$1; shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_top/$cg" "$@"
}
killed_reading() {  # killed_reading FILE: the reader in payments.service dies of SIGKILL
  local rc=0
  run_in payments.service cat "$1" > /dev/null 2>&1 || rc=$?
  [ "$rc" -eq 137 ]
}
reads_fine() { run_in payments.service cat "$1" > /dev/null 2>&1; }
id_of() {  # id_of PATH: the credential id of the last access line of PATH
  jq -r --arg p "$1" 'select(.type == "credential_access" and .credential.path == $p) | .credential.id' \
    "$state/events.jsonl" | tail -1
}
wait_line_count() {  # wait_line_count PATH N: N access lines of PATH
  for _ in $(seq 50); do
    [ "$(jq -r --arg p "$1" 'select(.type == "credential_access" and .credential.path == $p) | 1' \
          "$state/events.jsonl" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
notice_count() {  # notice_count KIND: state notices of that kind in status
  ctl --json status | jq --arg k "$1" '[.state_notices[] | select(.kind == $k)] | length'
}
alerts_in_outbox() {  # alerts_in_outbox KIND: alert reports of that kind in the (new) outbox
  sqlite3 "$state/outbox.db" \
    "SELECT count(*) FROM reports WHERE type = 'alert' AND instr(payload, CAST('$1' AS BLOB)) > 0"
}
wait_alert() {
  for _ in $(seq 50); do [ "$(alerts_in_outbox "$1")" -ge 1 ] && return 0; sleep 0.1; done; return 1
}

# --- first agent: b, then a, get their ids; b is denied to payments.service
check "agent starts" start_agent
run_in payments.service cat "$cred_b" > /dev/null
check "read of b reported" wait_line_count "$cred_b" 1
printf '[default]\naws_access_key_id = AKIAE2ESTATEA%s\n' "$$" > "$cred_a"
run_in payments.service cat "$cred_a" > /dev/null   # a candidate: the agent adds it with the next id
run_in payments.service cat "$cred_a" > /dev/null
check "read of a reported" wait_line_count "$cred_a" 1
id_a=$(id_of "$cred_a"); id_b=$(id_of "$cred_b")
check "b was numbered before a ($id_b < $id_a)" [ "$id_b" -lt "$id_a" ]
ctl contain deny-credential --credential "$cred_b" --cgroup "${cg_top#"$cg_root"}/payments.service" --ttl 10m \
  --reason "e2e state recovery" > "$tmp/deny.out"
check "deny of b kills its reader" killed_reading "$cred_b"
check "a is still readable" reads_fine "$cred_a"
stop_agent

# --- credential_ids.json truncated (a crash of the old writer, a full disk): ids must not move
head -c 20 "$state/credential_ids.json" > "$tmp/ids.truncated"
cp "$tmp/ids.truncated" "$state/credential_ids.json"
check "agent starts with a truncated credential_ids.json" start_agent
check "the damaged id table is kept aside" bash -c "cmp -s '$tmp/ids.truncated' '$state'/credential_ids.json.damaged-*"
check "ids rebuilt from the pinned map is a state notice" [ "$(notice_count credential_ids_rebuilt)" -eq 1 ]
check "the rebuild is alerted" wait_alert credential_ids_rebuilt
check "after the restart the deny still kills b's reader" killed_reading "$cred_b"
check "and a, whose fresh id would be b's, is still readable" reads_fine "$cred_a"
run_in payments.service cat "$cred_a" > /dev/null
check "a read after the restart is reported" wait_line_count "$cred_a" 3
check "a keeps its id ($id_a)" [ "$(id_of "$cred_a")" = "$id_a" ]
check "b keeps its id ($id_b)" [ "$(id_of "$cred_b")" = "$id_b" ]
check "credential_ids.json is whole again, with the same ids" \
  jq -e --arg a "$cred_a" --arg b "$cred_b" ".escaped_paths[\$a] == $id_a and .escaped_paths[\$b] == $id_b" "$state/credential_ids.json"
stop_agent

# --- ledger.db with a damaged page, outbox.db with a damaged header
page=$(sqlite3 "$state/ledger.db" 'PRAGMA page_size')
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$state/ledger.db" bs=1 seek="$page" conv=notrunc status=none
printf 'this is not an SQLite header!!!' | dd of="$state/outbox.db" bs=1 seek=0 conv=notrunc status=none
cp "$state/ledger.db" "$tmp/ledger.damaged"; cp "$state/outbox.db" "$tmp/outbox.damaged"
check "agent starts with a damaged ledger and outbox" start_agent
check "the damaged ledger is kept aside" bash -c "cmp -s '$tmp/ledger.damaged' '$state'/ledger.db.damaged-*"
check "the damaged outbox is kept aside" bash -c "cmp -s '$tmp/outbox.damaged' '$state'/outbox.db.damaged-*"
check "both quarantines are state notices" [ "$(notice_count state_quarantined)" -eq 2 ]
check "the quarantines are alerts in the new outbox" bash -c "
  for _ in \$(seq 50); do
    [ \"\$(sqlite3 '$state/outbox.db' \"SELECT count(*) FROM reports WHERE type = 'alert' AND
       instr(payload, CAST('state_quarantined' AS BLOB)) > 0\")\" -eq 2 ] && exit 0; sleep 0.1
  done; exit 1"
check "the deny without a ledger row is reported" [ "$(notice_count unowned_kernel_state)" -eq 1 ]
check "the unowned deny is an alert" wait_alert unowned_kernel_state
check "the log says what was damaged and where it is kept" grep -q "rollback ledger .* was damaged .* kept as" "$tmp/agent.log"
check "the pinned deny still holds" killed_reading "$cred_b"
check "detection runs: a read is reported" bash -c "
  $(declare -f run_in); cg_top='$cg_top'; run_in payments.service cat '$cred_a' > /dev/null"
check "the read reached the event log" wait_line_count "$cred_a" 4
check "the fresh ledger takes new actions" \
  ctl contain freeze --cgroup "${cg_top#"$cg_root"}/payments.service" --ttl 1m --reason "e2e fresh ledger"
ctl --json actions | jq -r '.[0].handle' > "$tmp/handle"
ctl rollback "$(cat "$tmp/handle")" > /dev/null
stop_agent
check "the agent stopped cleanly" grep -q "stopping:" "$tmp/agent.log"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
