#!/usr/bin/env bash
# e2e: the real agent reporting to the real nhiguard-collector over mTLS on loopback (certificates
# from `nhiguardctl certs init`). A service in a test cgroup reads a credential and is contained:
# the events and the action reach the collector; `nhiguardctl --collector ... rollback` rolls the
# kernel state back on the node and the new state shows at the collector; an unexpected reader's
# action, held by the policy, is approved from the collector and carried out. Then the collector is
# SIGKILLed while the agent keeps producing reports and restarted, and the agent is SIGKILLed while
# it is sending and restarted: each time every report arrives exactly once (the collector holds
# sequences 1..last of the agent's outbox, each once, and every credential read is there).
# Usage: collector_reporting_test.sh AGENT [TESTS_DIR]
set -euo pipefail
agent=$1
# shellcheck source=lib/collector_env.sh
source "$(dirname "$0")/lib/collector_env.sh"
trap env_cleanup EXIT

write_hold_policy

start_collector
start_agent
check "the agent connects to the collector over mTLS" wait_for 15 connected
check "status names the transport and the certificate's agent id" \
  bash -c "'$ctl_bin' --socket '$sock' --json status | jq -e '.collector.transport == \"mtls\" and (.collector.agent_id | length > 0)'"
agent_id=$(status_field .collector.agent_id)

# --- an incident: credential reads by the service, then a containment of it
for _ in 1 2 3; do read_credential; done
check "the credential reads are stored at the collector" \
  wait_for 10 bash -c "[ \$(sqlite3 '$collector_db' \"SELECT count(*) FROM reports WHERE kind = 'credential_access'\") -ge 3 ]"
handle=$(ctl --json contain freeze --cgroup "$cg_top_rel/payments.service" --ttl 10m --reason "e2e: credential read" | jq -r .handle)
check "contain returned a handle" bash -c "[[ '$handle' == rb_* ]]"
check "the action reaches the collector as active" \
  wait_for 10 bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json actions | jq -e --arg h '$handle' '.[] | select(.handle == \$h) | .state == \"active\"'"
check "the kernel state is in force on the node (cgroup frozen)" grep -q "frozen 1" "$cg_top/payments.service/cgroup.events"

# --- rollback from the collector
check "nhiguardctl --collector rollback succeeds" ctlc rollback "$handle"
check "the node rolled the kernel state back (cgroup thawed)" \
  wait_for 10 grep -q "frozen 0" "$cg_top/payments.service/cgroup.events"
check "the node's ledger says rolled_back by the collector" \
  bash -c "'$ctl_bin' --socket '$sock' --json actions | jq -e --arg h '$handle' '.[] | select(.handle == \$h) | .state == \"rolled_back\"'"
check "the new state shows at the collector" \
  wait_for 10 bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json actions | jq -e --arg h '$handle' '.[] | select(.handle == \$h) | .state == \"rolled_back\"'"
check "the collector's history names the command that rolled it back" \
  bash -c "[ \$(sqlite3 '$collector_db' \"SELECT count(*) FROM action_history WHERE handle = '$handle' AND command_id != ''\") -ge 1 ]"
check "a second rollback from the collector is a no-op success" ctlc rollback "$handle"

# --- a held action approved from the collector
make_test_cgroups intruder.service
run_in intruder.service cat "$cred" > /dev/null
held_is() {  # held_is STATE: the intruder's action is in STATE in the node's ledger
  [ "$(ctl --json actions | jq -r --arg cg "$cg_top_rel/intruder.service" \
      '[.[] | select(.target.cgroup == $cg)][0].state // empty')" = "$1" ]
}
check "an unexpected reader is held for approval" wait_for 10 held_is held
held=$(ctl --json actions | jq -r --arg cg "$cg_top_rel/intruder.service" '[.[] | select(.target.cgroup == $cg)][0].handle')
check "the held action shows at the collector" \
  wait_for 10 bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json actions | jq -e --arg h '$held' '.[] | select(.handle == \$h) | .state == \"held\"'"
check "nhiguardctl --collector approve succeeds" ctlc approve "$held"
check "the node carried it out (active in its ledger)" wait_for 10 held_is active
check "the approved state shows at the collector" \
  wait_for 10 bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json actions | jq -e --arg h '$held' '.[] | select(.handle == \$h) | .state == \"active\"'"
ctl rollback "$held" > /dev/null

# exactly_once LABEL: every sequence the agent's outbox assigned is at the collector once, and the
# collector has as many credential reads as the test made.
exactly_once() {
  local label=$1 outbox last
  outbox=$(outbox_id); last=$(status_field .collector.outbox.last_sequence)
  read -r n distinct lo hi <<< "$(stored_sequences "$outbox")"
  check "$label: the collector holds sequences 1..$last of outbox $outbox (got $n rows, $lo..$hi)" \
    bash -c "[ '$n' = '$last' ] && [ '$distinct' = '$last' ] && [ '$lo' = 1 ] && [ '$hi' = '$last' ]"
  local reads; reads=$(db "SELECT count(*) FROM reports WHERE outbox_id = '$outbox' AND kind = 'credential_access'")
  check "$label: every credential read arrived once ($reads of $reads_made)" [ "$reads" = "$reads_made" ]
}
reads_made=4  # three by payments.service, one by the intruder

# --- the collector dies while the agent keeps producing reports
kill_collector
for _ in $(seq 40); do read_credential; done
reads_made=$((reads_made + 40))
check "with the collector down the agent says so in its status" \
  wait_for 10 bash -c "'$ctl_bin' --socket '$sock' --json status | jq -e '.collector.state != \"connected\" and (.collector.last_error | length > 0)'"
check "and keeps the reports in its outbox" bash -c "[ \$('$ctl_bin' --socket '$sock' --json status | jq .collector.outbox.pending_reports) -ge 40 ]"
check "the agent log says what failed and that reports stay in the outbox" grep -q "keeps writing reports to its outbox" "$tmp/agent.log"
start_collector
check "after the collector's restart the agent reconnects and drains its outbox" wait_for 40 all_acked
exactly_once "collector killed and restarted"

# --- the agent dies while it is sending. The collector is paused (SIGSTOP) so nothing is
# acknowledged: a burst of opens, each by its own short-lived process (repeat opens by one process
# are coalesced in the kernel into one record per second), fills the outbox and the send window, the agent
# is SIGKILLed with reports on the wire, then the collector resumes (it may store some of what was
# in flight) and the restarted agent sends everything unacknowledged again.
before=$(status_field .collector.outbox.last_sequence)
sent_before=$(status_field .collector.reports_sent)
kill -STOP "$collector_pid"
burst=2000
run_in payments.service bash -c 'for _ in $(seq "$1"); do (exec 3< "$0"); done' "$cred" "$burst"
reads_made=$((reads_made + burst))
check "the burst is in the outbox" \
  wait_for 20 bash -c "[ \$('$ctl_bin' --socket '$sock' --json status | jq .collector.outbox.last_sequence) -ge $((before + burst)) ]"
check "reports are on the wire, unacknowledged" \
  wait_for 10 bash -c "[ \$('$ctl_bin' --socket '$sock' --json status | jq .collector.reports_sent) -gt $sent_before ]"
in_flight=$(( $(status_field .collector.reports_sent) - sent_before ))
kill_agent
kill -CONT "$collector_pid"
echo "#    agent SIGKILLed with $in_flight report(s) sent and not acknowledged"
start_agent
check "the restarted agent reconnects and drains its outbox" wait_for 40 all_acked
exactly_once "agent killed mid-send and restarted"

# --- a small outbox fills while the collector is down: the oldest credential reads are replaced by
# drop markers, the action survives, and the collector accounts for every sequence
kill_agent
OUTBOX_MAX_BYTES=64KiB write_agent_config "$state_dir"
start_agent
kill_collector
for _ in $(seq 150); do read_credential; done
reads_made=$((reads_made + 150))
handle=$(ctl --json contain freeze --cgroup "$cg_top_rel/payments.service" --ttl 10m --reason "e2e: while the outbox is full" | jq -r .handle)
ctl rollback "$handle" > /dev/null
dropped=$(status_field .collector.outbox.dropped_total)
check "the full outbox dropped low-value reports and counts them ($dropped)" [ "$dropped" -gt 0 ]
check "the agent log says the outbox is full" grep -q "outbox .* is full" "$tmp/agent.log"
start_collector
check "the agent drains the outbox through the drop markers" wait_for 40 all_acked
outbox=$(outbox_id); last=$(status_field .collector.outbox.last_sequence)
uncovered=$(db "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < $last)
  SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.outbox_id = '$outbox' AND r.sequence = x)
  AND NOT EXISTS (SELECT 1 FROM lost_ranges l WHERE l.outbox_id = '$outbox' AND x BETWEEN l.first AND l.last)")
check "every sequence 1..$last is stored or declared dropped at the collector" [ "$uncovered" = 0 ]
declared=$(db "SELECT coalesce(sum(last - first + 1), 0) FROM lost_ranges WHERE outbox_id = '$outbox' AND source = 'agent'")
check "the collector counts exactly the reports the agent dropped ($declared)" [ "$declared" = "$dropped" ]
arrived=$(db "SELECT count(*) FROM reports WHERE outbox_id = '$outbox' AND kind = 'credential_access'")
check "every credential read arrived or was declared dropped ($arrived + $dropped of $reads_made)" \
  [ $((arrived + dropped)) = "$reads_made" ]
check "the action taken while the outbox was full reached the collector, rolled back" \
  bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json actions | jq -e --arg h '$handle' '.[] | select(.handle == \$h) | .state == \"rolled_back\"'"
check "an outbox_full alert reached the collector" \
  bash -c "[ \$(sqlite3 '$collector_db' \"SELECT count(*) FROM reports WHERE outbox_id = '$outbox' AND kind = 'alert'\") -ge 1 ]"

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -30 "$tmp/agent.log"
  echo "--- collector log (tail)"; tail -30 "$tmp/collector.log"
  exit 1
fi
echo "e2e collector reporting: all checks passed"
