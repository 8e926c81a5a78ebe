#!/usr/bin/env bash
# e2e: the fleet kill switch through the real collector. `nhiguardctl --collector ... mode observe
# --all` puts the connected agent in observe mode; the agent keeps it across a restart while the
# collector is down (mode.json); an agent that connects later (new state, new outbox) is put in
# observe by the collector's Welcome; `mode policy --all` lifts it.
# Usage: collector_kill_switch_test.sh AGENT [TESTS_DIR]
set -euo pipefail
agent=$1
# shellcheck source=lib/collector_env.sh
source "$(dirname "$0")/lib/collector_env.sh"
trap env_cleanup EXIT

mode_is() { [ "$(status_field .mode)" = "$1" ]; }

start_collector
start_agent
check "the agent connects" wait_for 15 connected
check "it starts in agent.yaml's mode (policy)" mode_is policy

check "mode observe --all is accepted by the collector" ctlc mode observe --all
check "the connected agent switches to observe" wait_for 10 mode_is observe
check "the agent persisted the mode the collector set" jq -e '.mode == "observe"' "$state_dir/mode.json"
check "the agent's result reached the collector (command done)" \
  wait_for 10 bash -c "[ \$(sqlite3 '$collector_db' \"SELECT count(*) FROM commands WHERE state = 3\") -ge 1 ]"

# --- restarted while the collector is down: the kill switch still holds
kill_collector
kill_agent
start_agent
check "restarted without a collector, the agent is still in observe" mode_is observe
check "its log says who set the mode" grep -q "mode observe set by collector" "$tmp/agent.log"

# --- a newly connecting agent (fresh state: new outbox, no mode.json) obeys the fleet mode
start_collector
kill_agent
write_agent_config "$tmp/state-new"
start_agent
check "once connected, the new agent is in observe (required by the collector's Welcome)" \
  wait_for 15 bash -c "'$ctl_bin' --socket '$sock' --json status | jq -e '.collector.state == \"connected\" and .mode == \"observe\"'"
check "the new agent has a new outbox" bash -c "[ -f '$tmp/state-new/outbox.db' ]"

# --- lifting the switch
check "mode policy --all is accepted" ctlc mode policy --all
check "the agent returns to policy" wait_for 10 mode_is policy

if [ "$failures" -ne 0 ]; then
  echo "--- agent log (tail)"; tail -30 "$tmp/agent.log"
  echo "--- collector log (tail)"; tail -30 "$tmp/collector.log"
  exit 1
fi
echo "e2e collector kill switch: all checks passed"
