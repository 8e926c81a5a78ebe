#!/usr/bin/env bash
# e2e: nhiguardctl's usage errors and exit codes, with no agent running. Everything checked here is
# rejected before anything is sent (exit 2), or fails to reach the agent (exit 3) with a message
# that says what to do. Usage: nhiguardctl_cli_test.sh AGENT SRC_DIR (nhiguardctl sits beside AGENT).
set -uo pipefail
ctl=$(dirname "$1")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguardctl-e2e.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sock=$tmp/absent/agent.sock
failures=0

# expect EXIT_CODE STDERR_SUBSTRING ARGS...: runs nhiguardctl --socket $sock ARGS.
expect() {
  local want_rc=$1 want_msg=$2; shift 2
  local rc=0
  "$ctl" --socket "$sock" "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [ "$rc" -eq "$want_rc" ] && grep -qF -- "$want_msg" "$tmp/err"; then
    echo "ok   - exit $rc: $*"
  else
    echo "FAIL - $*: exit $rc (want $want_rc), stderr: $(cat "$tmp/err") (want: $want_msg)"
    failures=$((failures + 1))
  fi
}

[ -x "$ctl" ] || { echo "no nhiguardctl at $ctl"; exit 1; }

expect 2 "invalid --ttl '15 minutes':" contain block-egress --unit payments.service --ttl "15 minutes" --reason test
expect 2 "--reason is required" contain block-egress --unit payments.service
expect 2 "--reason is required and must not be empty" contain freeze --unit payments.service --reason ""
expect 2 "invalid handle 'rb_123'" rollback rb_123
expect 2 "invalid handle 'rb_01arz3ndektsv4rrffq69g5fav'" approve rb_01arz3ndektsv4rrffq69g5fav
expect 2 "--ttl 2d exceeds the maximum of 1d" contain freeze --cgroup /system.slice/x.service --ttl 2d --reason test
expect 2 "--ttl does not apply to kill-process" contain kill-process --pid 4242 --ttl 5m --reason test
expect 2 "block-egress needs exactly one of --unit or --cgroup" contain block-egress --reason test
expect 2 "--pid does not apply to freeze" contain freeze --pid 4242 --reason test
expect 2 "kill-session needs --pid" contain kill-session --unit payments.service --reason test
expect 2 "deny-credential needs --credential" contain deny-credential --unit payments.service --reason test
expect 2 "--to applies to block-egress only" contain freeze --unit a.service --to 10.0.0.0/8 --reason test
expect 2 "invalid --to '10.0.0.300'" contain block-egress --unit a.service --to 10.0.0.300 --reason test
expect 2 "'payments' is not a unit name" contain freeze --unit payments --reason test
expect 2 "unknown action 'isolate-host'" contain isolate-host --unit a.service --reason test
expect 2 "invalid --state 'running'" actions --state running
expect 2 "A subcommand is required"
expect 3 "cannot connect to $sock: No such file or directory — is nhiguard-agent running?" status
expect 3 "is nhiguard-agent running?" actions --json
expect 3 "is nhiguard-agent running?" contain block-egress --unit payments.service --to 192.0.2.0/24:443 --reason test
expect 3 "is nhiguard-agent running?" rollback rb_01ARZ3NDEKTSV4RRFFQ69G5FAV

# A socket file nobody listens on is "not running" too.
mkdir -p "$tmp/absent"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$sock"
expect 3 "Connection refused — is nhiguard-agent running?" status

# A root-only socket seen by someone else: "need root". Only when this runs as root (as e2e does).
# (Skipped when uid 65534 cannot run the binary from where it was built.)
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null && as_nobody "$ctl" --version > /dev/null 2>&1; then
  chmod 0711 "$tmp" && chmod 0755 "$tmp/absent" && chmod 0600 "$sock"
  rc=0
  as_nobody "$ctl" --socket "$sock" status 2> "$tmp/err" || rc=$?
  if [ "$rc" -eq 3 ] && grep -qF "Permission denied — need root" "$tmp/err"; then
    echo "ok   - exit 3: status as uid 65534 on a root-only socket"
  else
    echo "FAIL - status as uid 65534: exit $rc, stderr: $(cat "$tmp/err")"
    failures=$((failures + 1))
  fi
fi

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all passed"
