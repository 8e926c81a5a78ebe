#!/usr/bin/env bash
# e2e: the policy engine through the real agent. Services in a test cgroup read planted credentials
# and talk to a "remote" listener in a network namespace of the test's own. With an enforce policy:
# an unexpected reader is blocked at once (block_egress of its cgroup, with a handle); a tainted
# connect outside the identity's allowed egress is blocked; a credential shared by two services is
# held, approved (then enforced) or rejected; a protected identity is only alerted on; a dry-run
# rule records the would-be handle and leaves the kernel alone; past the rate limit contain becomes
# hold; mode observe turns decisions into dry runs; a canary read is flagged; learning + suggest
# writes a policy that `policy check` accepts; a bad policy keeps the agent from starting.
# Usage: policy_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
src=$2
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-policy.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-policy-$$
cg_root=$(cgroup2_root)
test_top "nhiguard-test-$$"
netns=nhg-pol-$$
host_if=nhgp$$
n=$(( $$ % 200 + 20 ))
remote=10.203.$n.2
port=18556
sock=$tmp/agent.sock
events=$tmp/state/events.jsonl
agent_pid=
listener_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  stop_remote "$netns" "$host_if"
  remove_test_top
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# --- a bad policy keeps the agent from starting, with every error listed (no root needed for this)
mkdir -p "$tmp/bad.d" "$tmp/state" "$tmp/policy.d" "$tmp/creds" "$tmp/canary"
printf 'version: 1\nrules:\n  - name: r\n    trigger: unexpected_thing\n    response: [block_egres]\nbogus: 1\n' > "$tmp/bad.d/10-bad.yaml"
printf 'state_dir: %s/state\npolicy_dir: %s/bad.d\ncontrol_socket: %s/bad.sock\nbpf:\n  pin_dir: %s\n' \
  "$tmp" "$tmp" "$tmp" "$pin_dir" > "$tmp/bad-agent.yaml"
set +e
"$agent" --config "$tmp/bad-agent.yaml" 2> "$tmp/bad.err"; rc_bad=$?
set -e
check "a bad policy: exit 2" [ "$rc_bad" -eq 2 ]
check "a bad policy: every error with file, line and field" bash -c "grep -q '10-bad.yaml:4:[0-9]*: rules\[0\].trigger' '$tmp/bad.err' &&
  grep -q '10-bad.yaml:5:[0-9]*: rules\[0\].response: unknown action' '$tmp/bad.err' && grep -q '10-bad.yaml:6:1: bogus: unknown key' '$tmp/bad.err'"
check "a bad policy: nothing was pinned" [ ! -e "$pin_dir" ]

# --- the remote host: a namespace, a veth pair, a TCP listener
start_remote "$netns" "$host_if" "10.203.$n" "$port" "$tmp/received"

for c in aws gcp netrc dotenv git; do printf 'token = E2E-%s-%s\n' "$c" "$$" > "$tmp/creds/$c"; done
cat > "$tmp/policy.d/10-e2e.yaml" <<YAML
version: 1
defaults:
  ttl: 10m
  egress: ["127.0.0.0/8"]
rate_limit:
  max_actions: 3
  window: 10m
protected:
  - unit: guarded.service
identities:
  - match: {unit: reporter.service}
    egress: ["$remote/32:9"]
credentials:
  - {path: $tmp/creds/aws, class: aws, readers: [{unit: payments.service}]}
  - {path: $tmp/creds/gcp, class: gcp, readers: [{unit: payments.service}, {unit: billing.service}]}
  - {path: $tmp/creds/netrc, class: netrc, readers: [{unit: payments.service}]}
  - {path: $tmp/creds/dotenv, class: dotenv, readers: [{unit: payments.service}]}
  - {path: $tmp/creds/git, class: git, readers: [{unit: reporter.service}]}
canaries:
  - {path: $tmp/canary/credentials.old, class: aws, plant: true}
rules:
  - {name: canary-alert, trigger: canary_read, mode: alert}
  - name: reader-enforce
    trigger: unexpected_reader
    confidence: high
    mode: enforce
    response: block_egress
    when: {credential_class: [aws, gcp, dotenv]}
  - {name: netrc-dry-run, trigger: unexpected_reader, confidence: high, mode: enforce, dry_run: true,
     when: {credential_class: netrc}}
  - {name: egress-enforce, trigger: unexpected_egress, confidence: high, mode: enforce, when: {credential_class: git}}
YAML
check "policy check accepts the test policy" "$ctl" policy check "$tmp/policy.d/10-e2e.yaml"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $sock
hostname: e2e-host
event_log:
  path: $events
bpf:
  pin_dir: $pin_dir
YAML
check "--plant-canaries plants the policy's canaries and exits" \
  bash -c "'$agent' --config '$tmp/agent.yaml' --plant-canaries | grep -qx 'planted $tmp/canary/credentials.old'"
check "--plant-canaries again: already present" \
  bash -c "'$agent' --config '$tmp/agent.yaml' --plant-canaries | grep -qx 'present $tmp/canary/credentials.old'"
"$agent" --config "$tmp/agent.yaml" 2>> "$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && "$ctl" --socket "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
"$ctl" --socket "$sock" status > /dev/null || { echo "agent did not start"; tail -20 "$tmp/agent.log"; exit 1; }

services="payments intruder reporter other other2 guarded dryrun e1 e2 e3"
for s in $services; do make_test_cgroups "$s.service"; done
run_in() {  # run_in SERVICE COMMAND...
  local cg=$1; shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_top/$cg.service" "$@"
}
send_from() {  # send_from SERVICE: one TCP connection to the remote
  run_in "$1" bash -c "exec 3<>/dev/tcp/$remote/$port && printf x >&3" 2>/dev/null
}
blocked_from() { ! send_from "$@"; }
ctl() { "$ctl" --socket "$sock" "$@"; }
decision() {  # decision JQ_FILTER: waits up to 5 s for a decision record matching it, prints it
  local filter=$1
  for _ in $(seq 50); do
    if jq -c "select(.type == \"decision\") | select($filter)" "$events" 2>/dev/null | head -1 | grep -q .; then
      jq -c "select(.type == \"decision\") | select($filter)" "$events" | head -1
      return 0
    fi
    sleep 0.1
  done
  return 1
}
blocks() {  # entries of the pinned egress-block map (fails unless bpftool printed a list)
  bpftool -j map dump pinned "$pin_dir/nhg_egress_blocks" | jq -e 'if type == "array" then length else error("not a map dump") end'
}
unit_is() { echo ".identity.unit == \"$1.service\""; }

# --- 1. an unexpected reader is contained at once: block_egress of its cgroup, with a handle
run_in intruder cat "$tmp/creds/aws" > /dev/null
d1=$(decision "$(unit_is intruder)" || true)
check "unexpected reader: decision contain block_egress by rule reader-enforce" jq -e '.outcome == "contain" and
  .action == "block_egress" and .rule == "reader-enforce" and .trigger.kind == "unexpected_reader" and .dry_run == false
  and .handle.state == "active" and (.handle.handle | startswith("rb_")) and .ttl == "10m"' <<< "$d1"
check "unexpected reader: the record names the trigger event, and that event is in the log" bash -c \
  "id=\$(jq -r '.trigger.event_ids[0]' <<< '$d1'); jq -e --arg id \"\$id\" 'select(.event_id == \$id and .type == \"credential_access\")' '$events' | grep -q ."
check "unexpected reader: the handle carries the rollback operation" jq -e '.rollback_operation | startswith("delete nhg_egress_blocks")' <<< "$d1"
check "unexpected reader: its service cannot connect out" blocked_from intruder
check "an allowed service still connects" send_from payments
check "nhiguardctl actions lists the automatic handle" bash -c "'$ctl' --socket '$sock' --json actions | jq -e --arg h \"\$(jq -r .handle.handle <<< '$d1')\" \
  '.[] | select(.handle == \$h) | .rule == \"reader-enforce\" and .state == \"active\" and (.trigger_event_ids | length) == 1'"

run_in intruder cat "$tmp/creds/aws" > /dev/null
sleep 0.3
check "the same trigger again within the quiet period is counted, not decided twice" bash -c \
  "[ \$(jq -c 'select(.type == \"decision\" and .identity.unit == \"intruder.service\")' '$events' | wc -l) -eq 1 ] &&
   '$ctl' --socket '$sock' --json status | jq -e '.decisions.suppressed >= 1 and .decisions.contain >= 1'"

# --- 2. a tainted connect outside the identity's allowed egress is blocked
run_in reporter bash -c "exec 4< '$tmp/creds/git'; read -r _ <&4; exec 3<>/dev/tcp/$remote/$port && printf y >&3" 2>/dev/null || true
d2=$(decision "$(unit_is reporter)" || true)
check "tainted egress: decision contain by rule egress-enforce with the destination" jq -e --arg d "$remote:$port" \
  '.outcome == "contain" and .rule == "egress-enforce" and .trigger.kind == "unexpected_egress" and .trigger.destination == $d
   and .handle.state == "active"' <<< "$d2"
check "tainted egress: the service cannot connect any more" blocked_from reporter

# --- 3. a credential shared by two services: hold; approve enforces it, reject declines another
run_in other cat "$tmp/creds/gcp" > /dev/null
d3=$(decision "$(unit_is other)" || true)
h3=$(jq -r '.handle.handle' <<< "$d3")
check "shared credential: decision hold, blast_radius tripped, handle held" jq -e '.outcome == "hold" and .handle.state == "held"
  and ([.gates[] | select(.gate == "blast_radius" and .result == "tripped")] | length) == 1' <<< "$d3"
check "held: nothing applied yet, the service connects" send_from other
check "approve executes the held action" bash -c "'$ctl' --socket '$sock' --json approve '$h3' | jq -e '.state == \"active\"'"
check "approved: the service is blocked" blocked_from other
check "approving twice is refused" bash -c "! '$ctl' --socket '$sock' approve '$h3'"
check "rollback of the approved action restores egress" bash -c "'$ctl' --socket '$sock' rollback '$h3' && sleep 0.2"
check "rolled back: the service connects" send_from other
run_in other2 cat "$tmp/creds/gcp" > /dev/null
d3b=$(decision "$(unit_is other2)" || true)
h3b=$(jq -r '.handle.handle' <<< "$d3b")
check "reject declines a held action" bash -c "'$ctl' --socket '$sock' --json reject '$h3b' | jq -e '.state == \"rejected\"'"
check "a rejected action cannot be approved" bash -c "! '$ctl' --socket '$sock' approve '$h3b'"
check "rejected: the service connects" send_from other2

# --- 4. a protected identity is never contained
run_in guarded cat "$tmp/creds/aws" > /dev/null
d4=$(decision "$(unit_is guarded)" || true)
check "protected identity: alert only, protected_identity tripped, no handle" jq -e '.outcome == "alert" and .handle == null
  and ([.gates[] | select(.gate == "protected_identity" and .result == "tripped")] | length) == 1' <<< "$d4"
check "protected identity: still connects" send_from guarded

# --- 5. dry run: the full decision and the would-be handle, the kernel untouched
blocks_before=$(blocks || echo none)
run_in dryrun cat "$tmp/creds/netrc" > /dev/null
d5=$(decision "$(unit_is dryrun)" || true)
check "dry run: decision contain marked dry_run with a dry_run handle" jq -e '.outcome == "contain" and .dry_run == true
  and .handle.state == "dry_run" and .handle.dry_run == true and .handle.action == "block_egress"
  and (.rollback_operation | length) > 0' <<< "$d5"
check "the kernel holds the two automatic blocks so far" [ "$blocks_before" -eq 2 ]
check "dry run: no egress block was added to the kernel" [ "$(blocks)" -eq "$blocks_before" ]
check "dry run: the service still connects" send_from dryrun

# --- 6. past the rate limit (3 per 10m: intruder, reporter, e1) a contain becomes hold + alert
run_in e1 cat "$tmp/creds/dotenv" > /dev/null
d6a=$(decision "$(unit_is e1)" || true)
check "rate limit: the third automated containment is still taken" jq -e '.outcome == "contain" and .handle.state == "active"' <<< "$d6a"
run_in e2 cat "$tmp/creds/dotenv" > /dev/null
d6=$(decision "$(unit_is e2)" || true)
check "rate limit: the fourth becomes hold with an alert, rate_limit tripped" jq -e '.outcome == "hold" and .alert == true
  and .handle.state == "held" and ([.gates[] | select(.gate == "rate_limit" and .result == "tripped")] | length) == 1' <<< "$d6"
check "rate limit: the held service still connects" send_from e2

# --- 7. mode observe at run time: decisions become dry runs
check "mode observe" bash -c "'$ctl' --socket '$sock' --json mode observe | jq -e '.mode == \"observe\" and .previous == \"policy\"'"
check "status reports the mode" bash -c "'$ctl' --socket '$sock' --json status | jq -e '.mode == \"observe\"'"
run_in e3 cat "$tmp/creds/aws" > /dev/null
d7=$(decision "$(unit_is e3)" || true)
check "mode observe: recorded as would have (dry run), nothing applied" jq -e '.dry_run == true and .handle.state == "dry_run"' <<< "$d7"
check "mode observe: the service connects" send_from e3
check "mode policy again" bash -c "'$ctl' --socket '$sock' --json mode policy | jq -e '.mode == \"policy\"'"

# --- 8. canaries: planted 0600, any read flagged at certain confidence
check "canary planted, 0600" bash -c "[ \"\$(stat -c %a '$tmp/canary/credentials.old')\" = 600 ] && grep -q aws_access_key_id '$tmp/canary/credentials.old'"
run_in payments cat "$tmp/canary/credentials.old" > /dev/null
check "canary read: alert by rule canary-alert at certain confidence" decision \
  '.trigger.kind == "canary_read" and .rule == "canary-alert" and .outcome == "alert" and .trigger.confidence == "certain"'

# --- 9. learning, then a suggested policy that allows exactly what was seen
check "learning starts" bash -c "'$ctl' --socket '$sock' --json policy learn --for 5m | jq -e '.learning == true'"
run_in payments bash -c "exec 4< '$tmp/creds/aws'; read -r _ <&4; exec 3<>/dev/tcp/$remote/$port && printf z >&3" 2>/dev/null || true
sleep 0.5
"$ctl" --socket "$sock" policy suggest --output "$tmp/suggested.yaml" 2> /dev/null || true
check "suggest wrote a policy that policy check accepts" "$ctl" policy check "$tmp/suggested.yaml"
check "the suggested policy allows payments.service to read the credential" \
  bash -c "grep -q 'path: $tmp/creds/aws' '$tmp/suggested.yaml' && grep -q 'unit: payments.service' '$tmp/suggested.yaml'"
check "the suggested policy allows payments.service's egress" grep -q "$remote:$port" "$tmp/suggested.yaml"
check "the suggested policy checks together with the test policy" "$ctl" policy check "$tmp/policy.d/10-e2e.yaml" "$tmp/suggested.yaml"
check "suggest never overwrites a file" bash -c "! '$ctl' --socket '$sock' policy suggest --output '$tmp/suggested.yaml'"

# --- every decision wrote one log line
n_decisions=$(jq -c 'select(.type == "decision")' "$events" | wc -l)
check "one log line per decision record ($n_decisions)" [ "$(grep -c 'decision \(observe\|alert\|hold\|contain\)' "$tmp/agent.log")" -eq "$n_decisions" ]
check "no credential byte in the event log or the agent log" bash -c "! grep -q 'E2E-' '$events' '$tmp/agent.log'"
[ -n "${KEEP_TMP:-}" ] && echo "kept $tmp"

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -40 "$tmp/agent.log"
  exit 1
fi
echo "e2e policy: all checks passed"
