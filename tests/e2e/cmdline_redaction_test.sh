#!/usr/bin/env bash
# e2e: secrets on a reader's command line never leave it. The real agent reports to the real
# nhiguard-collector (mTLS on loopback). A reader in a test cgroup runs
#   python3 -c "open('<credential>').read()" --aws-secret-access-key=SECRET -H "Authorization: Bearer TOKEN"
#           https://svc:PW@host ghp_...
# once exiting at once (the agent only has the kernel's argv) and once staying alive (the agent
# reads /proc/PID/cmdline); the policy holds it as an unexpected reader, so decisions, the ledger
# and the collector's incidents carry its identity too. Then `grep -r` for every secret over the
# agent's state dir, its log, the collector's database (with its WAL) and log, and the output of
# every nhiguardctl command finds nothing, while the <redacted:...> markers and
# "cmdline_redacted": true are there, and one secret has one fingerprint in both readers' records.
# Control: the agent restarted with `redact_cmdlines: false` warns at start, and the same grep finds
# that run's secrets in the event log and at the collector (so the checks above can fail).
# Usage: cmdline_redaction_test.sh AGENT [TESTS_DIR]
set -euo pipefail
agent=$1
# shellcheck source=lib/collector_env.sh
source "$(dirname "$0")/lib/collector_env.sh"
trap env_cleanup EXIT

write_hold_policy

# Secrets unique to this run, so a hit can only come from this test.
rand() { local s; s=$(head -c 4096 /dev/urandom | tr -dc 'A-Za-z0-9'); printf '%s' "${s:0:$1}"; }
secret=S3cr$(rand 16)
token=T0k$(rand 16)
password=Pw$(rand 12)
github=ghp_$(rand 36)
mkdir -p "$cg_top/reader.service" "$cg_top/lingerer.service"
# The argv stays under the kernel's 256 bytes, so both paths see every secret.
reader_argv() {  # reader_argv SECRET TOKEN PASSWORD GITHUB SLEEP
  printf '%s\0' python3 -c "import time; open('$cred').read(); time.sleep($5)" \
    "--aws-secret-access-key=$1" -H "Authorization: Bearer $2" "https://svc:$3@host.example" "$4"
}
run_reader() {  # run_reader CGROUP SECRET TOKEN PASSWORD GITHUB SLEEP
  local cg=$1; shift
  local -a argv; mapfile -d '' argv < <(reader_argv "$@")
  run_in "$cg" "${argv[@]}"
}

start_collector
start_agent
check "the agent connects to the collector" wait_for 15 connected
check "the agent made its redaction key 0600 in the state dir" \
  bash -c "[ \"\$(stat -c %a '$state_dir/cmdline_redaction.key')\" = 600 ]"

run_reader reader.service "$secret" "$token" "$password" "$github" 0
run_reader lingerer.service "$secret" "$token" "$password" "$github" 3 &
lingerer=$!
wait "$lingerer"
check "both readers' credential_access lines are written" \
  wait_for 10 bash -c "[ -n \"\$(jq -c 'select(.type == \"credential_access\" and (.workload.cgroup | endswith(\"lingerer.service\")))' '$state_dir/events.jsonl')\" ]"
check "the unexpected reader is held (a decision and a ledger row)" \
  wait_for 10 bash -c "'$ctl_bin' --socket '$sock' --json actions | jq -e 'any(.[]; .state == \"held\")'"
check "everything reached the collector" wait_for 20 all_acked
check "the collector stored the decisions" \
  bash -c "[ \$(sqlite3 '$collector_db' 'SELECT count(*) FROM decisions') -ge 1 ]"

# Every nhiguardctl output, local and from the collector, kept for the grep.
out=$tmp/ctl-output; mkdir -p "$out"
for args in status actions "--json status" "--json actions"; do
  # shellcheck disable=SC2086
  ctl $args > "$out/local-${args// /_}" 2>&1 || true
done
for args in agents incidents actions "--json agents" "--json incidents" "--json actions"; do
  # shellcheck disable=SC2086
  ctlc $args > "$out/collector-${args// /_}" 2>&1 || true
done
check "nhiguardctl --collector incidents shows the reader's redacted command line" \
  jq -e 'any(.[]; .process.cmdline_redacted and any(.process.cmdline[]; startswith("--aws-secret-access-key=<redacted:secret:")))' \
  "$out/collector---json_incidents"

no_secret_in() {  # no_secret_in NAME VALUE: VALUE is nowhere in the agent's or collector's files or in ctl output
  local hits
  hits=$(grep -r -a -F -l -- "$2" "$state_dir" "$tmp/agent.log" "$collector_db"* "$tmp/collector.log" "$out" 2>/dev/null || true)
  if [ -n "$hits" ]; then echo "$1 found in: $hits" >&2; return 1; fi
}
for name in secret token password github; do
  check "the $name is in no state file, log, collector row or ctl output" no_secret_in "$name" "${!name}"
done
check "the event log has the markers" \
  bash -c "grep -q '<redacted:secret:' '$state_dir/events.jsonl' && grep -q 'Bearer <redacted:bearer:' '$state_dir/events.jsonl' &&
           grep -q 'svc:<redacted:url_password:' '$state_dir/events.jsonl' && grep -q '<redacted:github_token:' '$state_dir/events.jsonl'"
check "the collector's database has the markers" grep -a -q '<redacted:bearer:' "$collector_db"*
check "every credential_access line says cmdline_redacted: true" \
  bash -c "jq -s -e '[.[] | select(.type == \"credential_access\")] | length > 0 and all(.process.cmdline_redacted == true)' '$state_dir/events.jsonl'"
fp_of() {  # fp_of CGROUP_SUFFIX: the fingerprint of --aws-secret-access-key in that reader's line
  jq -r --arg s "$1" 'select(.type == "credential_access" and (.workload.cgroup | endswith($s))) | .process.cmdline[]' \
    "$state_dir/events.jsonl" | sed -n 's/^--aws-secret-access-key=<redacted:secret:\([0-9a-f]\{12\}\)>$/\1/p' | head -1
}
fp_kernel=$(fp_of reader.service); fp_proc=$(fp_of lingerer.service)
check "one secret, one fingerprint, from the kernel's argv and from /proc ($fp_kernel, $fp_proc)" \
  bash -c "[ -n '$fp_kernel' ] && [ '$fp_kernel' = '$fp_proc' ]"
check "the lingering reader's identity came from /proc" \
  bash -c "jq -s -e 'any(.[]; .type == \"credential_access\" and (.workload.cgroup | endswith(\"lingerer.service\")) and .process.resolved_from_proc)' '$state_dir/events.jsonl'"

# --- control: redaction off, the same grep finds that run's secrets
kill_agent
off_secret=Off$(rand 16) off_token=Off$(rand 16) off_password=Off$(rand 12) off_github=ghp_$(rand 36)
write_agent_config "$tmp/state" "redact_cmdlines: false"
start_agent
check "redact_cmdlines: false logs a warning at start" grep -q "redact_cmdlines: false in the config" "$tmp/agent.log"
check "the agent reconnects" wait_for 15 connected
run_reader lingerer.service "$off_secret" "$off_token" "$off_password" "$off_github" 0
check "with redaction off the secret is in the event log (the grep can find a leak)" \
  wait_for 10 grep -q -F -- "$off_secret" "$state_dir/events.jsonl"
check "with redaction off the line says cmdline_redacted: false" \
  bash -c "jq -s -e 'any(.[]; .type == \"credential_access\" and .process.cmdline_redacted == false)' '$state_dir/events.jsonl'"
check "with redaction off the secret reaches the collector's database" \
  wait_for 20 bash -c "all_acked() { [ \"\$('$ctl_bin' --socket '$sock' --json status | jq -r .collector.outbox.pending_reports)\" = 0 ]; }; all_acked && grep -a -q -F -- '$off_secret' '$collector_db'*"

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -30 "$tmp/agent.log"
  echo "--- collector log (tail)"; tail -30 "$tmp/collector.log"
  exit 1
fi
echo "e2e cmdline redaction: all checks passed"
