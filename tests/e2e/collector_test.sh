#!/usr/bin/env bash
# e2e: the real nhiguard-collector on loopback (ephemeral port, mTLS with a PKI made by
# `nhiguardctl certs init`), driven by nhiguardctl and by collector_probe (a client speaking the real
# protocol, playing an agent or an operator with any certificate or none). Checks: who may call
# what; reports stored once and acked; a scripted agent receiving a rollback and a queued kill
# switch; malformed, oversized and mis-identified messages refused with a status and a log line
# while the server keeps serving; a clean stop on SIGTERM.
# Usage: collector_test.sh AGENT SRC_DIR (the build's other binaries are found from AGENT's path).
set -uo pipefail
build=$(cd "$(dirname "$1")/.." && pwd)
ctl=$build/agent/nhiguardctl
collector=$build/collector/nhiguard-collector
probe=$build/tests/collector_probe
tmp=$(mktemp -d /tmp/nhiguard-collector-e2e.XXXXXX)
collector_pid=
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2> /dev/null
  [ -n "$collector_pid" ] && kill -KILL "$collector_pid" 2> /dev/null
  wait 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }
for binary in "$ctl" "$collector" "$probe"; do [ -x "$binary" ] || { echo "missing $binary"; exit 1; }; done

pki=$tmp/pki
"$ctl" certs init "$pki" --hostname e2e-host --agent web-2 --agent web-3 > /dev/null || { echo "certs init failed"; exit 1; }

start_collector() {  # start_collector [EXTRA ARGS...]
  rm -f "$tmp/port"
  "$collector" --listen 127.0.0.1:0 --db "sqlite:$tmp/collector.db" --pki "$pki" --port-file "$tmp/port" \
    --max-message-bytes 65536 "$@" >> "$tmp/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  [ -s "$tmp/port" ] || { echo "collector did not start:"; cat "$tmp/collector.log"; exit 1; }
  addr=127.0.0.1:$(cat "$tmp/port")
}
start_collector

# expect_probe CODE DESCRIPTION ARGS...: collector_probe's final status line must carry CODE.
expect_probe() {
  local want=$1 what=$2; shift 2
  "$probe" "$addr" "$pki" "$@" > "$tmp/probe.out" 2>&1
  if grep -q "^status $want" "$tmp/probe.out"; then ok "$what: $want"; else bad "$what: want $want, got: $(cat "$tmp/probe.out")"; fi
}
# expect_log TEXT: the collector logged a line containing TEXT.
expect_log() { if grep -qF -- "$1" "$tmp/collector.log"; then ok "logged: $1"; else bad "no log line with: $1"; fi; }
octl() { "$ctl" --collector "$addr" --pki "$pki" "$@"; }

handle=rb_01JD0000000000000000000E2E

# --- who may call what
expect_probe UNAUTHENTICATED "no certificate: list agents" none operator list-agents
expect_probe UNAUTHENTICATED "no certificate: rollback" none operator rollback $handle
expect_probe UNAUTHENTICATED "no certificate: approve" none operator approve $handle
expect_probe UNAUTHENTICATED "no certificate: kill switch" none operator mode-all observe
expect_probe PERMISSION_DENIED "agent certificate: rollback" agent operator rollback $handle
expect_probe PERMISSION_DENIED "agent certificate: approve" agent operator approve $handle
expect_probe PERMISSION_DENIED "agent certificate: kill switch" agent operator mode-all observe
expect_probe UNAUTHENTICATED "no certificate: agent stream" none agent e2e-host send 1
expect_probe PERMISSION_DENIED "operator certificate: agent stream" operator agent operator send 1
expect_probe PERMISSION_DENIED "agent certificate, hello for another agent" agent agent e2e-host hello-as web-2
expect_log "presented no certificate"
expect_log "has a certificate for role 'agent', this call needs 'operator'"
expect_log "hello says agent 'web-2' but the certificate is for 'e2e-host'"
# An operator certificate from another CA (the server is still verified with ours): the handshake
# refuses it before any call.
"$ctl" certs init "$tmp/other-pki" --hostname elsewhere > /dev/null
mkdir -p "$tmp/foreign" && cp "$pki/ca.pem" "$tmp/foreign/" && cp "$tmp/other-pki"/operator/operator*.pem "$tmp/foreign/"
rc=0; "$ctl" --collector "$addr" --pki "$tmp/foreign" mode observe --all > "$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] && ok "operator certificate of another CA: refused in the handshake (exit 3)" \
  || bad "foreign CA: exit $rc: $(cat "$tmp/out")"
expect_log "grpc: Handshake failed"

if "$ctl" --collector "$addr" --insecure agents > /dev/null 2>&1; then bad "plaintext client served"; else ok "plaintext client refused"; fi

# --- reports: stored once, acked cumulatively, resumed after a reconnect
expect_probe OK "agent web-2 sends 50 reports" agents/web-2/agent agent web-2 send 50 outbox-a
grep -q "^acked 50$" "$tmp/probe.out" && ok "acked through 50" || bad "ack: $(cat "$tmp/probe.out")"
expect_probe OK "web-2 reconnects and sends 25 more" agents/web-2/agent agent web-2 send 25 outbox-a
grep -q "welcome acked_through=50" "$tmp/probe.out" && ok "welcome resumes at 50" || bad "resume: $(cat "$tmp/probe.out")"
grep -q "^acked 75$" "$tmp/probe.out" && ok "acked through 75" || bad "ack: $(cat "$tmp/probe.out")"
octl --json agents > "$tmp/agents.json" || bad "nhiguardctl agents"
stored=$(jq -r '.agents[] | select(.agent_id == "web-2") | .reports_stored' "$tmp/agents.json")
[ "$stored" = 75 ] && ok "75 reports stored for web-2" || bad "stored: $stored"

# --- malformed, oversized: refused, logged, and the server keeps serving
expect_probe INVALID_ARGUMENT "malformed protobuf" agents/web-2/agent agent web-2 malformed
expect_log "is not a valid AgentMessage"
expect_probe RESOURCE_EXHAUSTED "report above --max-message-bytes" agents/web-2/agent agent web-2 oversized 100000
expect_log "above the limit of 65536 bytes"
expect_probe RESOURCE_EXHAUSTED "message above the transport limit" agents/web-2/agent agent web-2 oversized 200000
expect_probe OK "still serving after refusals" agents/web-2/agent agent web-2 send 5 outbox-a
grep -q "^acked 80$" "$tmp/probe.out" && ok "acked through 80" || bad "ack: $(cat "$tmp/probe.out")"

# --- commands: a rollback reaches the connected agent and its result shows at the collector
"$probe" "$addr" "$pki" agent agent e2e-host serve $handle 1 outbox-s > "$tmp/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do octl --json actions 2> /dev/null | jq -e ".[] | select(.handle == \"$handle\")" > /dev/null && break; sleep 0.1; done
octl --json actions > "$tmp/actions.json" || bad "nhiguardctl actions"
jq -e ".[] | select(.handle == \"$handle\" and .state == \"active\" and .agent_id == \"e2e-host\" and .rule == \"manual\"
         and .reason == \"e2e probe\" and (.created_at | type) == \"string\" and (.expires_at | type) == \"string\"
         and .target.description == \"cgroup /system.slice/probe.service\")" "$tmp/actions.json" > /dev/null \
  && ok "action reported active with the contract fields" || bad "actions: $(cat "$tmp/actions.json")"
if octl approve $handle > "$tmp/out" 2>&1; then bad "approve of an active action accepted"; else
  grep -q "only a held action can be approved" "$tmp/out" && ok "approve of an active action refused" || bad "approve: $(cat "$tmp/out")"; fi
expect_log "operator call approve by operator failed: $handle is active, only a held action can be approved"
rc=0; octl mode observe --agent ghost > "$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "NOT_FOUND" "$tmp/out" && grep -q "unknown agent ghost" "$tmp/out" \
  && ok "mode for an unknown agent: NOT_FOUND" || bad "unknown agent: exit $rc: $(cat "$tmp/out")"
expect_log "operator call SetMode by operator failed: unknown agent ghost"
rc=0; octl rollback rb_01JD0000000000000000000NXP > "$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "NOT_FOUND" "$tmp/out" && ok "rollback of a handle no agent reported: NOT_FOUND" \
  || bad "unknown handle: exit $rc: $(cat "$tmp/out")"
octl rollback $handle --wait 10s --reason "e2e" > "$tmp/rollback.out" 2>&1 || bad "rollback: $(cat "$tmp/rollback.out")"
grep -q "rolled_back" "$tmp/rollback.out" && grep -q "done, ok: rolled back" "$tmp/rollback.out" \
  && ok "rollback done by the agent: $(head -1 "$tmp/rollback.out")" || bad "rollback output: $(cat "$tmp/rollback.out")"
wait "$serve_pid"; serve_pid=
grep -q "^command rollback $handle" "$tmp/serve.out" && ok "agent received the rollback" || bad "serve: $(cat "$tmp/serve.out")"
octl --json actions --state rolled_back | jq -e ".[] | select(.handle == \"$handle\")" > /dev/null \
  && ok "collector shows rolled_back" || bad "state not rolled_back"
[ "$(octl --json actions --agent web-2 | jq length)" = 0 ] && [ "$(octl --json actions --agent e2e-host | jq length)" = 1 ] \
  && ok "actions --agent filters by agent" || bad "actions --agent"
rc=0; "$ctl" actions --agent e2e-host > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] && ok "actions --agent without --collector: usage error" || bad "actions --agent locally: exit $rc"

# --- kill switch while the agent is offline: queued, and in the Welcome when it reconnects
octl mode observe --all > "$tmp/mode.out" 2>&1 || bad "mode observe --all: $(cat "$tmp/mode.out")"
grep -q "kill switch ON" "$tmp/mode.out" && grep -q "for agent e2e-host: pending" "$tmp/mode.out" \
  && ok "kill switch on, queued for the offline agent" || bad "mode: $(cat "$tmp/mode.out")"
expect_probe OK "agent reconnects and obeys the kill switch" agent agent e2e-host serve $handle 1 outbox-s
grep -q "required_mode=MODE_OBSERVE" "$tmp/probe.out" && grep -q "^command set_mode MODE_OBSERVE" "$tmp/probe.out" \
  && ok "welcome and queued command carry observe" || bad "reconnect: $(cat "$tmp/probe.out")"
expect_probe OK "an agent never seen before" agents/web-3/agent agent web-3 send 1 outbox-c
grep -q "required_mode=MODE_OBSERVE" "$tmp/probe.out" && ok "a later agent gets observe too" || bad "$(cat "$tmp/probe.out")"

# --- the kill switch and the reports survive a restart; SIGTERM stops cleanly
kill -TERM "$collector_pid"; rc=0; wait "$collector_pid" || rc=$?; collector_pid=
[ "$rc" -eq 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM: exit $rc"
expect_log "SIGTERM received, shutting down"
start_collector
octl agents > "$tmp/agents.txt" 2>&1 || bad "agents after restart"
grep -q "fleet mode: observe" "$tmp/agents.txt" && ok "kill switch persisted" || bad "$(cat "$tmp/agents.txt")"
expect_probe OK "resume after restart" agents/web-2/agent agent web-2 send 1 outbox-a
grep -q "welcome acked_through=80" "$tmp/probe.out" && ok "acked watermark persisted" || bad "$(cat "$tmp/probe.out")"
kill -TERM "$collector_pid"; wait "$collector_pid"; collector_pid=

# --- --max-agents: one stream more than allowed is refused, the one open keeps working
start_collector --max-agents 1
"$probe" "$addr" "$pki" agent agent e2e-host serve $handle 1 outbox-s > "$tmp/serve.out" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do octl --json agents 2> /dev/null | jq -e '.agents[] | select(.agent_id == "e2e-host" and .connected)' > /dev/null && break; sleep 0.1; done
expect_probe RESOURCE_EXHAUSTED "a second agent beyond --max-agents 1" agents/web-2/agent agent web-2 send 1 outbox-a
expect_log "refused: 1 streams already open (--max-agents 1)"
octl rollback $handle --wait 10s > /dev/null 2>&1 && ok "the open stream still takes commands" || bad "rollback under the limit"
wait "$serve_pid"; serve_pid=
kill -TERM "$collector_pid"; wait "$collector_pid"; collector_pid=

if [ "$failures" -ne 0 ]; then
  echo "--- collector log"; cat "$tmp/collector.log"
  echo "$failures check(s) failed"; exit 1
fi
echo "all collector checks passed"
