#!/usr/bin/env bash
# e2e: the collector survives a hostile agent key. The real nhiguard-collector on loopback (mTLS,
# PKI from `nhiguardctl certs init`), attacked through collector_probe (the real protocol, with a
# real agent certificate, "evil"). For every attack: the collector refuses it with a gRPC status and
# a log line, `nhiguardctl --collector ... agents` still works and the fleet kill switch can still be
# set and lifted (`mode observe|policy --all`), and another agent's reports are still acked.
# Attacks: drop markers whose ranges overflow (three times [1, 2^62]) or add up past 2^63 over
# outboxes; streams that never say hello (the --max-agents slots); a second stream of an agent;
# a flood of large reports (the ingest queue's byte bound); a flood of reports (the per-agent rate
# limit); a drop marker over stored reports in the same group commit as an honest agent's reports;
# another agent's rollback handle; oversized hellos and a hello for another agent. Last, a server
# holding an agent's or an operator's certificate of the fleet CA is refused by nhiguardctl.
# Usage: collector_hostile_agent_test.sh AGENT SRC_DIR (the other binaries are found from AGENT's path).
set -uo pipefail
build=$(cd "$(dirname "$1")/.." && pwd)
ctl=$build/agent/nhiguardctl
collector=$build/collector/nhiguard-collector
probe=$build/tests/collector_probe
tmp=$(mktemp -d /tmp/nhiguard-hostile-e2e.XXXXXX)
collector_pid=
rogue_pid=
background=()
cleanup() {
  for pid in "${background[@]}" "$rogue_pid" "$collector_pid"; do [ -n "$pid" ] && kill -KILL "$pid" 2> /dev/null; done
  wait 2> /dev/null
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }
for binary in "$ctl" "$collector" "$probe"; do [ -x "$binary" ] || { echo "missing $binary"; exit 1; }; done

pki=$tmp/pki
"$ctl" certs init "$pki" --hostname e2e-host --agent evil --agent victim --agent honest --agent web-2 > /dev/null \
  || { echo "certs init failed"; exit 1; }
cert() { echo "agents/$1/agent"; }  # the certificate base of agent NAME, for collector_probe

start_collector() {  # start_collector [EXTRA ARGS...]: a fresh log section, same database
  rm -f "$tmp/port"
  echo "=== collector $*" >> "$tmp/collector.log"
  "$collector" --listen 127.0.0.1:0 --db "sqlite:$tmp/collector.db" --pki "$pki" --port-file "$tmp/port" \
    --max-message-bytes 65536 "$@" >> "$tmp/collector.log" 2>&1 &
  collector_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  [ -s "$tmp/port" ] || { echo "collector did not start:"; cat "$tmp/collector.log"; exit 1; }
  addr=127.0.0.1:$(cat "$tmp/port")
}
stop_collector() { kill -TERM "$collector_pid"; wait "$collector_pid"; collector_pid=; }

probe_out=$tmp/probe.out
run_probe() { "$probe" "$addr" "$pki" "$@" > "$probe_out" 2>&1; }
# expect_probe CODE DESCRIPTION ARGS...: collector_probe's final status line carries CODE.
expect_probe() {
  local want=$1 what=$2; shift 2
  run_probe "$@"
  if grep -q "^status $want" "$probe_out"; then ok "$what: $want"; else bad "$what: want $want, got: $(cat "$probe_out")"; fi
}
# expect_log TEXT: the collector logged a line containing TEXT.
expect_log() { if grep -qF -- "$1" "$tmp/collector.log"; then ok "logged: $1"; else bad "no log line with: $1"; fi; }
octl() { "$ctl" --collector "$addr" --pki "$pki" "$@"; }

# After each attack: the operator can list the fleet and set and lift the kill switch, and an
# honest agent's reports are stored and acked.
honest_next=0
fleet_still_works() {
  local after=$1 out=$tmp/fleet.out
  if octl agents > "$out" 2>&1; then ok "$after: nhiguardctl agents works"; else bad "$after: agents: $(cat "$out")"; fi
  if octl mode observe --all > "$out" 2>&1 && grep -q "kill switch ON" "$out"; then
    ok "$after: the kill switch can be set"
  else
    bad "$after: mode observe --all: $(cat "$out")"
  fi
  octl mode policy --all > "$out" 2>&1 || bad "$after: mode policy --all: $(cat "$out")"
  honest_next=$((honest_next + 5))
  run_probe "$(cert honest)" agent honest send 5 outbox-honest
  if grep -q "^acked $honest_next$" "$probe_out"; then ok "$after: another agent is acked ($honest_next)"; else
    bad "$after: honest agent: want acked $honest_next: $(cat "$probe_out")"; fi
}

start_collector
fleet_still_works "at start"

# --- 1. drop markers that overflow: refused, and valid huge ones do not break the listing
expect_probe INVALID_ARGUMENT "a drop marker with three ranges [1, 2^62]" "$(cert evil)" agent evil \
  marker ob-evil 9223372036854775807 1 4611686018427387904 1 4611686018427387904 1 4611686018427387904
expect_log "agent stream evil from"
expect_log "dropped range 1-4611686018427387904 is not within"
expect_probe INVALID_ARGUMENT "a report with sequence 2^63" "$(cert evil)" agent evil \
  marker ob-evil 9223372036854775808 1 2
expect_log "sequences stay below 2^63"
# Each valid on its own (one outbox, one range below 2^63), together past 2^63.
for outbox in ob-e1 ob-e2 ob-e3; do
  run_probe "$(cert evil)" agent evil marker $outbox 9223372036854775806 1 9223372036854775806
  grep -q "^acked 9223372036854775806$" "$probe_out" || bad "a valid huge marker ($outbox): $(cat "$probe_out")"
done
# (grep, not jq: jq 1.6 reads numbers as doubles)
octl --json agents > "$tmp/agents.json" 2>&1 \
  && tr -d ' \n' < "$tmp/agents.json" | grep -q '"agent_id":"evil"' \
  && tr -d ' \n' < "$tmp/agents.json" | grep -q '"reports_lost":9223372036854775807' \
  && ok "lost reports over 2^63 are listed (clamped), not an error" \
  || bad "agents after huge markers: $(cat "$tmp/agents.json")"
fleet_still_works "after the overflowing drop markers"

# --- 2. streams that never say hello hold no --max-agents slot and are closed after 10 s
stop_collector
start_collector --max-agents 2
idle=0
for base in "$(cert evil)" "$(cert victim)" agent "$(cert evil)"; do  # agent: e2e-host's certificate
  idle=$((idle + 1))
  "$probe" "$addr" "$pki" "$base" agent x idle > "$tmp/idle.$idle" 2>&1 &
  background+=($!)
  sleep 0.3
done
expect_probe OK "with 3 idle streams open, agent honest connects" "$(cert honest)" agent honest send 5 outbox-honest
honest_next=$((honest_next + 5))
expect_probe OK "and agent web-2 too (--max-agents 2)" "$(cert web-2)" agent web-2 send 5 outbox-w2
wait "${background[@]}"; background=()
for i in 2 3 4; do
  grep -q "^status CANCELLED" "$tmp/idle.$i" && grep -Eq "^ended after (9|10|11)\." "$tmp/idle.$i" \
    && ok "idle stream $i closed at the 10 s hello deadline: $(tail -1 "$tmp/idle.$i")" \
    || bad "idle stream $i: $(cat "$tmp/idle.$i")"
done
grep -q "^status CANCELLED" "$tmp/idle.1" && grep -Eq "^ended after 0\." "$tmp/idle.1" \
  && ok "an idle stream was replaced by a newer one of the same certificate: $(tail -1 "$tmp/idle.1")" \
  || bad "idle stream 1: $(cat "$tmp/idle.1")"
expect_log "agent stream from evil (ipv4:127.0.0.1"
expect_log "closed: no hello within 10s"
expect_log "closed: replaced by a newer stream of agent evil before its hello"
fleet_still_works "after idle streams"

# --- 3. one stream per agent id: a second stream replaces the first
"$probe" "$addr" "$pki" "$(cert web-2)" agent web-2 hold 20 outbox-w2 > "$tmp/hold.out" 2>&1 &
background+=($!)
for _ in $(seq 100); do octl --json agents 2> /dev/null | jq -e '.agents[] | select(.agent_id == "web-2" and .connected)' > /dev/null && break; sleep 0.1; done
expect_probe OK "a second stream of web-2 is served" "$(cert web-2)" agent web-2 send 3 outbox-w2
grep -q "^acked 8$" "$probe_out" && ok "and acked" || bad "second stream: $(cat "$probe_out")"
wait "${background[@]}"; background=()
grep -q "^status CANCELLED" "$tmp/hold.out" && ok "the first stream of web-2 was closed (CANCELLED)" \
  || bad "first stream: $(cat "$tmp/hold.out")"
expect_log "agent web-2 stream from ipv4:127.0.0.1"
expect_log "closed: replaced by a newer stream of agent web-2 from"
fleet_still_works "after a second stream"

# --- 4. the ingest queue is bounded in bytes: large reports wait (back-pressure), none is lost
stop_collector
start_collector --max-queued-mib 1
"$probe" "$addr" "$pki" "$(cert evil)" agent evil flood 600 60000 ob-big > "$tmp/big.out" 2>&1 &
background+=($!)
expect_probe OK "an honest agent during the flood of large reports" "$(cert honest)" agent honest send 5 outbox-honest
honest_next=$((honest_next + 5))
wait "${background[@]}"; background=()
grep -q "^acked 600$" "$tmp/big.out" && grep -q "^status OK" "$tmp/big.out" \
  && ok "600 reports of 60 kB through a 1 MiB queue: every one stored and acked" || bad "big: $(cat "$tmp/big.out")"
expect_log "ingest queue full ("
expect_log "waits until the store catches up (back-pressure, nothing is refused)"
fleet_still_works "after a flood of large reports"

# --- 5. the per-agent report rate limit
stop_collector
start_collector --max-reports-per-second 50 --max-report-burst 100
expect_probe RESOURCE_EXHAUSTED "a flood of 2000 reports at 50/s (burst 100)" "$(cert evil)" agent evil flood 2000 0 ob-flood
grep -q "rate limit: agent evil sent more than 50 reports per second" "$probe_out" && ok "the status says rate limit" \
  || bad "flood status: $(cat "$probe_out")"
expect_log "rate limit: agent evil sent more than 50 reports per second (bursts up to 100)"
fleet_still_works "after a report flood"

# --- 6. a group commit that fails for one agent costs the others nothing
stop_collector
start_collector
expect_probe OK "evil stores reports 1, 2 and 4 (3 missing)" "$(cert evil)" agent evil reports ob-c 1 2 4
"$probe" "$addr" "$pki" "$(cert web-2)" agent web-2 send 3000 outbox-batch > "$tmp/batch.out" 2>&1 &
background+=($!)
sleep 0.5
expect_probe CANCELLED "then a drop marker over its stored report 4, amid web-2's reports" "$(cert evil)" agent evil \
  marker ob-c 5 3 5
wait "${background[@]}"; background=()
grep -q "^acked 3000$" "$tmp/batch.out" && grep -q "^status OK" "$tmp/batch.out" \
  && ok "web-2's 3000 reports all stored and acked, its stream never cancelled" || bad "web-2: $(cat "$tmp/batch.out")"
expect_log "ingest: agent evil: agent evil outbox ob-c report 5: dropped range 3-5 covers report 4, which is stored"
expect_log "agent evil stream from ipv4:127.0.0.1"
[ "$(sqlite3 "$tmp/collector.db" "SELECT count(*) FROM reports WHERE agent_id = 'evil' AND outbox_id = 'ob-c'")" = 3 ] \
  && ok "nothing of the refused marker was stored" || bad "evil's ob-c rows"
fleet_still_works "after a refused commit"

# --- 7. another agent's handle: the victim's action stays routable by (agent, handle)
handle=rb_01JD0000000000000000000VTM
"$probe" "$addr" "$pki" "$(cert victim)" agent victim serve $handle 1 ob-victim > "$tmp/victim.out" 2>&1 &
background+=($!)
for _ in $(seq 100); do octl --json actions 2> /dev/null | jq -e ".[] | select(.handle == \"$handle\")" > /dev/null && break; sleep 0.1; done
expect_probe OK "evil reports the victim's handle as its own (rolled back)" "$(cert evil)" agent evil \
  action $handle ROLLED_BACK ob-shadow
rc=0; octl rollback $handle > "$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "FAILED_PRECONDITION" "$tmp/out" && grep -q "more than one agent (evil, victim)" "$tmp/out" \
  && grep -q -- "--agent ID" "$tmp/out" && ok "a bare handle two agents reported: refused, asks for --agent" \
  || bad "bare ambiguous rollback: exit $rc: $(cat "$tmp/out")"
expect_log "operator call rollback by operator failed: action $handle was reported by more than one agent"
octl rollback $handle --agent victim --wait 10s > "$tmp/out" 2>&1 && grep -q "done, ok: rolled back" "$tmp/out" \
  && ok "rollback --agent victim reaches the victim: $(tail -1 "$tmp/out")" || bad "rollback --agent victim: $(cat "$tmp/out")"
wait "${background[@]}"; background=()
grep -q "^command rollback $handle" "$tmp/victim.out" && ok "the victim received the rollback" \
  || bad "victim: $(cat "$tmp/victim.out")"
[ "$(octl --json actions --agent victim | jq -r ".[] | select(.handle == \"$handle\") | .state")" = rolled_back ] \
  && ok "the victim's action is rolled_back, from its own result" || bad "victim's action state"
octl rollback $handle --agent evil > "$tmp/out" 2>&1 && grep -q "for agent evil: pending" "$tmp/out" \
  && ok "rollback --agent evil goes to evil's own row, not the victim: $(tail -1 "$tmp/out")" \
  || bad "rollback --agent evil: $(cat "$tmp/out")"
fleet_still_works "after a shadowed handle"

# --- 8. other ways through the stream: hellos too big or for another agent
expect_probe INVALID_ARGUMENT "a hello with a 60 kB hostname" "$(cert evil)" agent evil huge-hello 60000
expect_log "hello: hostname of 60000 bytes (at most 253)"
expect_probe PERMISSION_DENIED "a hello for another agent id" "$(cert evil)" agent evil hello-as victim
expect_log "hello says agent 'victim' but the certificate is for 'evil'"
expect_probe RESOURCE_EXHAUSTED "a report above --max-message-bytes" "$(cert evil)" agent evil oversized 100000
fleet_still_works "after malformed hellos"
stop_collector

# --- 9. a server holding the fleet's agent or operator certificate is not the collector
ca_key=$(find "$pki" -name ca-key.pem | head -1)
# rogue_cert ROLE DIR: a certificate the TLS layer accepts for a server on 127.0.0.1 (fleet CA,
# serverAuth, SAN 127.0.0.1) but for ROLE, and a server directory holding it as collector.pem.
rogue_cert() {
  mkdir -p "$2" && cp "$pki/ca.pem" "$2/"
  openssl ecparam -name prime256v1 -genkey -noout -out "$2/collector-key.pem" 2> /dev/null
  openssl req -new -key "$2/collector-key.pem" -subj "/O=nhiguard/OU=$1/CN=rogue-$1" -out "$2/req.csr" 2> /dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > "$2/ext"
  openssl x509 -req -in "$2/req.csr" -CA "$pki/ca.pem" -CAkey "$ca_key" -CAcreateserial -days 2 -sha256 \
    -extfile "$2/ext" -out "$2/collector.pem" 2> /dev/null
}
for role in agent operator; do
  rogue_cert $role "$tmp/rogue-$role" || { bad "could not make a $role certificate"; continue; }
  rm -f "$tmp/rogue.port"
  "$collector" --listen 127.0.0.1:0 --db "sqlite:$tmp/rogue.db" --pki "$tmp/rogue-$role" --port-file "$tmp/rogue.port" \
    >> "$tmp/rogue.log" 2>&1 &
  rogue_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/rogue.port" ] && break; sleep 0.1; done
  rc=0; "$ctl" --collector "127.0.0.1:$(cat "$tmp/rogue.port")" --pki "$pki" mode observe --all > "$tmp/out" 2>&1 || rc=$?
  [ "$rc" -eq 3 ] && grep -q "not the collector" "$tmp/out" && grep -q "for role '$role' (CN rogue-$role), not 'collector'" "$tmp/out" \
    && ok "nhiguardctl refuses a server with an $role certificate (exit 3): $(tail -1 "$tmp/out")" \
    || bad "nhiguardctl against a server with an $role certificate: exit $rc: $(cat "$tmp/out")"
  kill -TERM "$rogue_pid"; wait "$rogue_pid"; rogue_pid=
done
# An agent certificate exactly as `certs init` makes it (clientAuth only), for the name the client uses.
"$ctl" certs init "$pki" --agent localhost > /dev/null
mkdir -p "$tmp/rogue-plain" && cp "$pki/ca.pem" "$tmp/rogue-plain/"
cp "$pki/agents/localhost/agent.pem" "$tmp/rogue-plain/collector.pem"
cp "$pki/agents/localhost/agent-key.pem" "$tmp/rogue-plain/collector-key.pem"
rm -f "$tmp/rogue.port"
"$collector" --listen 127.0.0.1:0 --db "sqlite:$tmp/rogue.db" --pki "$tmp/rogue-plain" --port-file "$tmp/rogue.port" \
  >> "$tmp/rogue.log" 2>&1 &
rogue_pid=$!
for _ in $(seq 100); do [ -s "$tmp/rogue.port" ] && break; sleep 0.1; done
rc=0; "$ctl" --collector "localhost:$(cat "$tmp/rogue.port")" --pki "$pki" agents > "$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] && ok "nhiguardctl refuses a server with a plain agent certificate (exit 3): $(tail -1 "$tmp/out")" \
  || bad "plain agent certificate as server: exit $rc: $(cat "$tmp/out")"
kill -TERM "$rogue_pid"; wait "$rogue_pid"; rogue_pid=

if [ "$failures" -ne 0 ]; then
  echo "--- collector log (tail)"; tail -60 "$tmp/collector.log"
  echo "$failures check(s) failed"; exit 1
fi
echo "all hostile-agent checks passed"
