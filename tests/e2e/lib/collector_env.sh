# Shared by the collector e2e tests (sourced, not run): a fleet PKI from `nhiguardctl certs init`,
# a real nhiguard-collector on loopback, a real agent reporting to it, a simulated service in a test
# cgroup, and the helpers the checks use. Everything lives under $tmp, $pin_dir, $cg_top and is
# removed by env_cleanup (the caller's EXIT trap). Callers set `agent` (the agent binary) first.
#
# Ports: 20000 + (pid mod 20000), so concurrent sessions on one host do not collide.

# shellcheck source=support.sh
source "$(dirname "${BASH_SOURCE[0]}")/support.sh"

bin_dir=$(dirname "$agent")
ctl_bin=$bin_dir/nhiguardctl
collector_bin=$(cd "$bin_dir/.." && pwd)/collector/nhiguard-collector
tmp=$(mktemp -d /tmp/nhiguard-e2e-collector.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-collector-$$
cg_root=$(cgroup2_root)
test_top "nhiguard-test-$$"
port=$(( 20000 + $$ % 20000 ))
collector_addr=127.0.0.1:$port
collector_db=$tmp/collector.db
agent_pid=
collector_pid=
failures=0

env_cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$collector_pid" ] && kill -9 "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
  remove_test_top
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}

wait_for() {  # wait_for SECONDS COMMAND...: true once COMMAND succeeds
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" > /dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# --- the fleet PKI and the agent's configuration (state_dir given as $1, default $tmp/state)
"$ctl_bin" certs init "$tmp/pki" > /dev/null
mkdir -p "$tmp/home/svc/.aws"
printf '[default]\naws_access_key_id = AKIAE2ECOLLECT%s\n' "$$" > "$tmp/home/svc/.aws/credentials"
cred=$tmp/home/svc/.aws/credentials

write_hold_policy() {  # payments.service may read $cred; any other reader is held for a person's approval
  cat > "$tmp/policy.d/10-e2e.yaml" <<YAML
version: 1
credentials:
  - {path: $cred, class: aws, readers: [{unit: payments.service}]}
rules:
  - {name: reader-hold, trigger: unexpected_reader, confidence: high, mode: hold, response: block_egress}
YAML
}

write_agent_config() {  # write_agent_config STATE_DIR [extra YAML]
  mkdir -p "$tmp/policy.d"
  cat > "$tmp/agent.yaml" <<YAML
state_dir: $1
policy_dir: $tmp/policy.d
control_socket: $1/agent.sock
hostname: e2e-host
event_log:
  path: $1/events.jsonl
bpf:
  pin_dir: $pin_dir
collector:
  address: $collector_addr
  pki: $tmp/pki/agent
  outbox_max_bytes: ${OUTBOX_MAX_BYTES:-256MiB}
credentials:
  - path: $cred
    class: aws
${2:-}
YAML
  state_dir=$1
  sock=$1/agent.sock
}
write_agent_config "$tmp/state"

collector_listening() { ss -ltnH "sport = :$port" | grep -q LISTEN; }
start_collector() {
  "$collector_bin" --listen "$collector_addr" --db "sqlite:$collector_db" --pki "$tmp/pki/collector" >> "$tmp/collector.log" 2>&1 &
  collector_pid=$!
  wait_for 10 collector_listening || { echo "collector did not start"; tail -20 "$tmp/collector.log"; exit 1; }
}
kill_collector() { kill -9 "$collector_pid"; wait "$collector_pid" 2>/dev/null || true; collector_pid=; }

start_agent() {
  "$agent" --config "$tmp/agent.yaml" >> "$tmp/agent.log" 2>&1 &
  agent_pid=$!
  wait_for 15 "$ctl_bin" --socket "$sock" status || { echo "agent did not start"; tail -20 "$tmp/agent.log"; exit 1; }
}
kill_agent() { kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=; }

ctl() { "$ctl_bin" --socket "$sock" "$@"; }
ctlc() { "$ctl_bin" --collector "$collector_addr" --pki "$tmp/pki" "$@"; }
status_field() { ctl --json status | jq -r "$1"; }  # status_field JQ_PATH
connected() { [ "$(status_field .collector.state)" = connected ]; }
# Everything the outbox ever assigned is acknowledged by the collector.
all_acked() {
  local s; s=$(ctl --json status) || return 1
  [ "$(jq -r '.collector.outbox.pending_reports' <<< "$s")" = 0 ]
}

# --- the simulated service
make_test_cgroups payments.service
run_in() {  # run_in CGROUP COMMAND...
  local cg=$1; shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_top/$cg" "$@"
}
read_credential() { run_in payments.service cat "$cred" > /dev/null; }

# Rows the collector stored for the agent's current outbox.
outbox_id() { status_field .collector.outbox.outbox_id; }
db() { sqlite3 -batch -noheader "$collector_db" "$1"; }
# Sequences stored for the outbox: count, distinct count, min and max, as "N D MIN MAX".
stored_sequences() {
  db "SELECT count(*), count(DISTINCT sequence), coalesce(min(sequence), 0), coalesce(max(sequence), 0)
      FROM reports WHERE outbox_id = '$1'" | tr '|' ' '
}
