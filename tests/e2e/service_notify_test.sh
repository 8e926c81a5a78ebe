#!/usr/bin/env bash
# e2e: the agent's readiness protocol with systemd (Type=notify), against a stand-in for systemd's
# notify socket. The moment READY=1 arrives, nhiguardctl status must already succeed (the sensor is
# attached and the control socket listens); READY=1 comes once; SIGTERM brings STOPPING=1 and a
# clean exit. Usage: service_notify_test.sh AGENT SRC_DIR
set -euo pipefail
agent=$1
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-notify.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-notify-$$
sock=$tmp/agent.sock
agent_pid=
receiver_pid=
failures=0

cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null || true
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" > /dev/null 2>&1; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}

mkdir -p "$tmp/policy.d"
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $sock
hostname: e2e-notify
bpf:
  pin_dir: $pin_dir
YAML

# The stand-in for systemd: one line per datagram in $tmp/notified; on READY=1 it runs nhiguardctl
# status at once and records its exit code on the same line.
python3 - "$tmp/notify" "$tmp/notified" "$ctl" "$sock" <<'PY' &
import socket, subprocess, sys
path, out, ctl, ctl_sock = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "w", buffering=1) as f:
    while True:
        state = s.recv(4096).decode()
        line = state.replace("\n", "|")
        if "READY=1" in state.split("\n"):
            rc = subprocess.run([ctl, "--socket", ctl_sock, "status"], capture_output=True).returncode
            line += f" ctl_status_rc={rc}"
        print(line, file=f)
        if "STOPPING=1" in state.split("\n"):
            break
PY
receiver_pid=$!
for _ in $(seq 50); do [ -S "$tmp/notify" ] && break; sleep 0.1; done

NOTIFY_SOCKET=$tmp/notify "$agent" --config "$tmp/agent.yaml" 2> "$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 300); do grep -q 'READY=1' "$tmp/notified" 2>/dev/null && break; sleep 0.1; done

check "READY=1 sent, with a status line" grep -q '^READY=1|STATUS=sensor attached, control socket listening' "$tmp/notified"
check "nhiguardctl status succeeded the moment READY=1 arrived" grep -q 'ctl_status_rc=0$' "$tmp/notified"
kill -TERM "$agent_pid"
rc=0; wait "$agent_pid" || rc=$?
agent_pid=
check "clean exit on SIGTERM (exit 0, got $rc)" test "$rc" -eq 0
for _ in $(seq 50); do grep -q 'STOPPING=1' "$tmp/notified" && break; sleep 0.1; done
check "STOPPING=1 sent on the way out" grep -qx 'STOPPING=1' "$tmp/notified"
check "READY=1 sent exactly once" test "$(grep -c 'READY=1' "$tmp/notified")" -eq 1
cat "$tmp/notified" | sed 's/^/# /'

echo "failures: $failures"
[ "$failures" -eq 0 ]
