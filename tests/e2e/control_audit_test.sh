#!/usr/bin/env bash
# e2e: local commands are audited, and a contained workload cannot lift its own containment. With the
# real agent reporting to the real collector: a cgroup is blocked; `nhiguardctl rollback` run from a
# process inside that cgroup is refused with the reason and the block stays (ledger active, kernel
# map entry still pinned); the same command from outside rolls it back. `nhiguardctl audit` and the
# collector (the action's history, with the peer of the nhiguardctl change, and the control_audit
# reports, refused one included) show both peers: pid, uid, exe, cgroup.
# Usage: control_audit_test.sh AGENT [TESTS_DIR]
set -euo pipefail
agent=$1
# shellcheck source=lib/collector_env.sh
source "$(dirname "$0")/lib/collector_env.sh"
trap env_cleanup EXIT
proto_dir=$(cd "$(dirname "$0")/../../proto" && pwd)

start_collector
start_agent
check "the agent connects to the collector" wait_for 15 connected

make_test_cgroups blocked.service
blocked=$cg_top_rel/blocked.service
blocked_id=$(stat -c %i "$cg_top/blocked.service")
handle=$(ctl --json contain block-egress --cgroup "$blocked" --ttl 10m --reason "e2e: audit" | jq -r .handle)
check "contain returned a handle" bash -c "[[ '$handle' == rb_* ]]"
pinned() { bpftool -j map dump pinned "$pin_dir/nhg_egress_blocks" | jq -e --argjson k "$blocked_id" 'map(select((.formatted.key // .key) == $k)) | length == 1'; }
not_pinned() { ! pinned; }
action_state() { ctl --json actions | jq -r --arg h "$handle" '.[] | select(.handle == $h) | .state'; }
mode_before=$(status_field .mode)
check "the block is in the kernel map" pinned

# --- from inside the blocked cgroup: refused, still blocked
rc=0; run_in blocked.service "$ctl_bin" --socket "$sock" rollback "$handle" > "$tmp/inside.out" 2>&1 || rc=$?
sed 's/^/# inside: /' "$tmp/inside.out"
check "rollback from inside the blocked cgroup exits 1" test "$rc" = 1
check "it is refused with the reason (inside the cgroup the action targets)" \
  grep -q "refused.*inside cgroup $blocked targeted by $handle" "$tmp/inside.out"
check "the action is still active" test "$(action_state)" = active
check "the block is still in the kernel map" pinned
rc=0; run_in blocked.service "$ctl_bin" --socket "$sock" mode observe > /dev/null 2>&1 || rc=$?
check "mode observe from inside the blocked cgroup is refused too" test "$rc" = 1
check "the agent's mode is unchanged ($mode_before)" test "$(status_field .mode)" = "$mode_before"

# --- from outside: rolled back
check "rollback from outside succeeds" ctl rollback "$handle"
check "the action is rolled back" test "$(action_state)" = rolled_back
check "the block is gone from the kernel map" not_pinned

# --- the audit trail on the node: both peers
ctl --json audit > "$tmp/audit.json"
exe=$(readlink -f "$ctl_bin")
own_cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)
check "nhiguardctl audit: the refused rollback with its peer (pid, uid 0, exe, the blocked cgroup)" \
  jq -e --arg h "$handle" --arg exe "$exe" --arg cg "$blocked" \
    'map(select(.method == "rollback" and .handle == $h and .outcome == "refused" and .peer.pid > 0 and
                .peer.uid == 0 and .peer.exe == $exe and .peer.cgroup == $cg and (.message | length > 0))) | length == 1' \
    "$tmp/audit.json"
check "nhiguardctl audit: the refused mode observe" \
  jq -e 'map(select(.method == "set_mode" and .detail == "observe" and .outcome == "refused")) | length == 1' "$tmp/audit.json"
check "nhiguardctl audit: the rollback from outside, ok, with a peer outside the blocked cgroup" \
  jq -e --arg h "$handle" --arg exe "$exe" --arg cg "$blocked" \
    'map(select(.method == "rollback" and .handle == $h and .outcome == "ok" and .peer.exe == $exe and
                .peer.cgroup != $cg and (.peer.cgroup | startswith($cg + "/") | not))) | length == 1' "$tmp/audit.json"
check "nhiguardctl audit: the contain" \
  jq -e --arg h "$handle" 'map(select(.method == "contain" and .handle == $h and .outcome == "ok")) | length == 1' "$tmp/audit.json"

# --- at the collector
check "everything reached the collector" wait_for 15 all_acked
ctlc --json actions > "$tmp/collector-actions.json"
check "collector: the rollback's history entry names its peer (actor nhiguardctl, pid, uid, exe, cgroup)" \
  jq -e --arg h "$handle" --arg exe "$exe" \
    '.[] | select(.handle == $h) | .history | map(select(.to_state == "rolled_back" and .actor == "nhiguardctl" and
      .peer.pid > 0 and .peer.uid == 0 and .peer.exe == $exe and (.peer.cgroup | length > 0))) | length == 1' \
    "$tmp/collector-actions.json"
db "SELECT hex(body) FROM reports WHERE kind = 'control_audit' ORDER BY sequence" > "$tmp/audit.hex"
: > "$tmp/audit.txt"
while read -r hex; do
  echo "$hex" | xxd -r -p | protoc -I "$proto_dir" --decode=nhiguard.v1.Report nhiguard/v1/agent.proto >> "$tmp/audit.txt"
done < "$tmp/audit.hex"
check "collector: a control_audit report per command (contain, refused rollback, refused mode, rollback)" \
  bash -c "[ \$(wc -l < '$tmp/audit.hex') -ge 4 ]"
check "collector: the refused rollback, with the blocked cgroup as its peer's" \
  bash -c "grep -A12 'method: \"rollback\"' '$tmp/audit.txt' | grep -q 'cgroup: \"$blocked\"'"
check "collector: the refusal and the success are both there" \
  bash -c "grep -q 'outcome: \"refused\"' '$tmp/audit.txt' && grep -q 'outcome: \"ok\"' '$tmp/audit.txt'"
check "the agent logged the refusal with its peer" grep -q "control: rollback $handle.*by pid .* cgroup $blocked: refused" "$tmp/agent.log"

echo "failures: $failures"
[ "$failures" -eq 0 ]
