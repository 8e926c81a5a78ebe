#!/usr/bin/env bash
# e2e: the fleet kill switch through the real collector, with an enforcing policy. An unexpected
# reader of a credential is contained (block_egress) while the agent is in policy mode. After
# `nhiguardctl --collector ... mode observe --all` the connected agent is in observe mode and the
# same kind of read only records a dry run: no containment is taken. The agent keeps the mode across
# a restart while the collector is down (mode.json); an agent that connects later (new state, new
# outbox) is put in observe by the collector's Welcome and takes no containment either; `mode policy
# --all` lifts the switch and containment works again.
# Usage: collector_kill_switch_test.sh AGENT [TESTS_DIR]
set -euo pipefail
agent=$1
# shellcheck source=lib/collector_env.sh
source "$(dirname "$0")/lib/collector_env.sh"
trap env_cleanup EXIT

cat > "$tmp/policy.d/10-e2e.yaml" <<YAML
version: 1
defaults:
  ttl: 10m
credentials:
  - {path: $cred, class: aws, readers: [{unit: payments.service}]}
rules:
  - {name: reader-enforce, trigger: unexpected_reader, confidence: high, mode: enforce, response: block_egress}
YAML
check "policy check accepts the test policy" "$ctl_bin" policy check "$tmp/policy.d/10-e2e.yaml"

mode_is() { [ "$(status_field .mode)" = "$1" ]; }
# The ledger's action for the cgroup of SERVICE, as "STATE DRY_RUN" (empty while there is none).
action_of() {
  ctl --json actions | jq -r --arg cg "$cg_top_rel/$1" \
    '[.[] | select(.target.cgroup == $cg)][0] | select(. != null) | "\(.state) \(.dry_run)"'
}
# intruder SERVICE: a service the policy does not allow reads the credential.
intruder() { make_test_cgroups "$1"; run_in "$1" cat "$cred" > /dev/null; }
contained() { [ "$(action_of "$1")" = "active false" ]; }
only_dry_run() { [ "$(action_of "$1")" = "dry_run true" ]; }

start_collector
start_agent
check "the agent connects" wait_for 15 connected
check "it starts in agent.yaml's mode (policy)" mode_is policy
intruder first.service
check "in policy mode an unexpected reader is contained (block_egress active)" wait_for 10 contained first.service

# --- the kill switch
check "mode observe --all is accepted by the collector" ctlc mode observe --all
check "the connected agent switches to observe" wait_for 10 mode_is observe
check "the agent persisted the mode the collector set" jq -e '.mode == "observe"' "$state_dir/mode.json"
check "the agent's result reached the collector (command done)" \
  wait_for 10 bash -c "[ \$(sqlite3 '$collector_db' \"SELECT count(*) FROM commands WHERE state = 3\") -ge 1 ]"
intruder second.service
check "in observe the same read only records a dry run: no containment" wait_for 10 only_dry_run second.service
check "the dry-run decision reached the collector" \
  wait_for 10 bash -c "'$ctl_bin' --collector '$collector_addr' --pki '$tmp/pki' --json incidents | jq -e 'map(select(.dry_run == true)) | length >= 1'"

# --- restarted while the collector is down: the kill switch still holds
kill_collector
kill_agent
start_agent
check "restarted without a collector, the agent is still in observe" mode_is observe
check "its log says who set the mode" grep -q "mode observe set by collector" "$tmp/agent.log"
intruder third.service
check "and takes no containment" wait_for 10 only_dry_run third.service

# --- a newly connecting agent (fresh state: new outbox, no mode.json) obeys the fleet mode
start_collector
kill_agent
write_agent_config "$tmp/state-new"
start_agent
# The agent waits for the collector's first answer before it starts handling events.
check "the new agent is in observe as soon as it runs (required by the collector's Welcome)" mode_is observe
check "and connected" wait_for 15 connected
check "the new agent has a new outbox" test -f "$tmp/state-new/outbox.db"
intruder fourth.service
check "the new agent takes no containment either" wait_for 10 only_dry_run fourth.service

# --- lifting the switch
check "mode policy --all is accepted" ctlc mode policy --all
check "the agent returns to policy" wait_for 10 mode_is policy
intruder fifth.service
check "containment works again" wait_for 10 contained fifth.service

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -30 "$tmp/agent.log"
  echo "--- collector log (tail)"; tail -30 "$tmp/collector.log"
  exit 1
fi
echo "e2e collector kill switch: all checks passed"
