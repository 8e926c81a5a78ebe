#!/usr/bin/env bash
# e2e: the real nhiguard-agent binary, a simulated service in a test cgroup, real credential reads.
# Checks the JSON event line end to end (identity, class, path, inode), candidate detection of a
# credential created after start, escaping of odd path bytes, that no credential byte leaks, and
# the agent's clear failures (bad config, not root). Usage: credential_access_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
tmp=$(mktemp -d /tmp/nhiguard-e2e.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-$$
cg_root=$(cgroup2_root)
test_top "nhiguard-test-$$"
agent_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  remove_test_top
  rm -rf "$pin_dir" "$tmp"
}
trap cleanup EXIT


[ -n "$cg_root" ] || { echo "no cgroup2 mount"; exit 1; }
secret="AKIAE2ETESTSECRET$$"
mkdir -p "$tmp/home/svc/.aws" "$tmp/state" "$tmp/policy.d"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %sVALUE\n' "$secret" "$secret" > "$tmp/home/svc/.aws/credentials"
cred="$tmp/home/svc/.aws/credentials"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
trust_domain: e2e.test
hostname: e2e-host
event_log:
  path: $tmp/state/events.jsonl
bpf:
  pin_dir: $pin_dir
rescan_interval: 1h
credentials:
  - path: $cred
    class: aws
  - glob: $tmp/home/*/.aws/credentials
    class: aws
YAML

# --- failures are clear and have their own exit codes
set +e
"$agent" --config "$tmp/missing.yaml" 2> "$tmp/err1"; rc_missing=$?
printf 'state_dir: 5\nbogus_key: 1\nrescan_interval: often\n' > "$tmp/bad.yaml"
"$agent" --config "$tmp/bad.yaml" 2> "$tmp/err2"; rc_bad=$?
chmod 711 "$tmp"; chmod 644 "$tmp/agent.yaml"  # readable by the unprivileged user: the failure must be privileges
setpriv --reuid=65534 --regid=65534 --clear-groups "$agent" --config "$tmp/agent.yaml" 2> "$tmp/err3"; rc_user=$?
"$agent" --check > "$tmp/check.txt" 2>&1; rc_check=$?
set -e
check "missing config exits 2" [ "$rc_missing" -eq 2 ]
check "invalid config exits 2" [ "$rc_bad" -eq 2 ]
check "invalid config names every bad field with its line" \
  bash -c "grep -q 'bad.yaml:2' '$tmp/err2' && grep -q 'bogus_key' '$tmp/err2' && grep -q 'rescan_interval' '$tmp/err2'"
check "unprivileged start exits 3 and says which capabilities are missing" \
  bash -c "[ $rc_user -eq 3 ] && grep -q 'CAP_' '$tmp/err3'"
check "--check succeeds and lists the syscall tracepoint probe" \
  bash -c "[ $rc_check -eq 0 ] && grep -q '^syscall_tracepoint *supported' '$tmp/check.txt'"

# --- start the agent
"$agent" --config "$tmp/agent.yaml" --log-level debug 2> "$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 100); do grep -q "sensor attached" "$tmp/agent.log" && break; sleep 0.1; done
check "agent reports the sensor attached" grep -q "sensor attached" "$tmp/agent.log"

make_test_cgroups payments.service other.service
run_in() {  # run_in CGROUP COMMAND...: the command runs entirely inside the cgroup
  local cg=$1; shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_top/$cg" "$@"
}
odd_link=$(printf '%s/odd\nname\xff\\x' "$tmp")
ln -s "$cred" "$odd_link"
run_in payments.service cat "$cred" > /dev/null
run_in payments.service sh -c "cd '$tmp/home/svc' && cat .aws/credentials > /dev/null"
run_in other.service cat "$odd_link" > /dev/null
run_in payments.service cat /etc/hostname > /dev/null

# A credential file created after start: the kernel's name table flags it, the agent resolves it.
mkdir -p "$tmp/home/late/.aws"
run_in payments.service sh -c "printf '[late]\n' > '$tmp/home/late/.aws/credentials'"
run_in payments.service cat "$tmp/home/late/.aws/credentials" > /dev/null

events=$tmp/state/events.jsonl
for _ in $(seq 100); do [ "$(wc -l < "$events" 2>/dev/null || echo 0)" -ge 5 ] && break; sleep 0.1; done
sleep 0.5
check "every line is valid JSON" jq -e . "$events"
n_payments=$(jq -s "[.[] | select(.type == \"credential_access\" and .credential.path == \"$cred\" and .workload.name == \"payments.service\")] | length" "$events")
check "two reads of the planted credential from payments.service (got $n_payments)" [ "$n_payments" -eq 2 ]
check "fields of the access line" jq -e -s --arg cred "$cred" '
  [.[] | select(.credential.path == $cred and .workload.name == "payments.service")][0] as $e
  | $e.time != null and $e.credential.class == "aws" and ($e.credential.inode | type) == "number"
    and $e.access == "read" and $e.process.pid > 0 and ($e.process.start_time | type) == "number"
    and ($e.process.exe | test("cat$")) and $e.process.uid == 0 and $e.process.cmdline == ["cat", $cred]
    and $e.workload.kind == "systemd" and $e.workload.id == "payments.service"
    and ($e.workload.uri | startswith("spiffe://e2e.test/host/e2e-host/systemd/payments.service"))' "$events"
check "relative path is reported as the process passed it" \
  jq -e -s '[.[] | select(.requested_path == ".aws/credentials")] | length == 1' "$events"
check "odd bytes in the path are escaped, not lost" \
  jq -e -s '[.[] | select(.workload.name == "other.service" and (.requested_path | test("odd\\\\x0aname\\\\xff\\\\\\\\x$")))] | length == 1' "$events"
check "credential created after start is detected on read" \
  jq -e -s --arg p "$tmp/home/late/.aws/credentials" '[.[] | select(.credential.path == $p and .access == "read")] | length == 1' "$events"
check "non-credential opens produce no line" \
  bash -c "! grep -q '/etc/hostname' '$events'"
check "no byte of the credential in events or log" \
  bash -c "! grep -q '$secret' '$events' '$tmp/agent.log'"
check "detection maps pinned" test -e "$pin_dir/nhg_credentials"

kill -TERM "$agent_pid"
set +e; wait "$agent_pid"; rc_stop=$?; set -e
agent_pid=
check "SIGTERM stops the agent cleanly" [ "$rc_stop" -eq 0 ]
check "no kernel drops reported" bash -c "! grep -q 'dropped' '$tmp/agent.log'"

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -40 "$tmp/agent.log"
  echo "--- events"; cat "$events" || true
  exit 1
fi
echo "e2e credential_access: all checks passed"
