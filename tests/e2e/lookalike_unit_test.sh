#!/usr/bin/env bash
# e2e: protection cannot be claimed by a name. The policy protects the system unit sshd.service.
# Cgroups named sshd.service that any user can make — below a user's own service manager
# (what `systemd-run --user --unit=sshd.service` makes), below an arbitrary test cgroup, and an
# empty child of that name — are not that unit: nhiguardctl contains them and their parents, the
# agent reports them as what they are (a user unit, a bare process) and contains their readers by
# policy. The system unit sshd.service (made by the test where the system manager puts units,
# /system.slice/<test>.slice/sshd.service) is refused, and so is the slice holding it, with the
# reason; its reader is never contained.
# Usage: lookalike_unit_test.sh AGENT SRC_DIR
set -euo pipefail
source "$(dirname "$0")/lib/support.sh"
agent=$1
ctl=$(dirname "$agent")/nhiguardctl
tmp=$(mktemp -d /tmp/nhiguard-e2e-lookalike.XXXXXX)
pin_dir=/sys/fs/bpf/nhiguard-e2e-lookalike-$$
cg_root=$(cgroup2_root)
[ -n "$cg_root" ] || { echo "no cgroup2 mount"; exit 1; }
test_top "nhiguard-test-$$"
# The look-alikes: a user unit of a uid nobody logs in as, and an arbitrary test cgroup.
lookalike_uid=$(( 61000 + $$ % 1000 ))
user_manager=/user.slice/user-$lookalike_uid.slice/user@$lookalike_uid.service
user_sshd=$user_manager/app.slice/sshd.service
plain_top=/nhiguard-test-$$
plain_sshd=$plain_top/app.slice/sshd.service
made_user_dirs=()  # what this test created below /user.slice, outermost first
sock=$tmp/agent.sock
events=$tmp/state/events.jsonl
agent_pid=
sleepers=()
failures=0

cleanup() {
  local i d
  for i in "${sleepers[@]}"; do kill -9 "$i" 2>/dev/null || true; done
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  for d in "$cg_root$plain_sshd" "$cg_root$plain_top/app.slice" "$cg_root$plain_top/sshd.service"; do
    echo 0 > "$d/cgroup.freeze" 2>/dev/null || true
  done
  for d in "$cg_root$user_sshd" "$cg_root$user_manager/app.slice" "$cg_root$user_manager"; do
    echo 0 > "$d/cgroup.freeze" 2>/dev/null || true
  done
  for d in "$cg_root$plain_top/app.slice" "$cg_root$plain_top"; do remove_test_cgroups "$d"; done
  remove_test_cgroups "$cg_root$user_manager/app.slice"
  for (( i = ${#made_user_dirs[@]} - 1; i >= 0; i-- )); do
    remove_test_cgroups "$cg_root${made_user_dirs[i]}"
  done
  remove_test_top
  rm -rf "$pin_dir"; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/state" "$tmp/policy.d" "$tmp/creds"
printf 'token = E2E-LOOKALIKE-%s\n' "$$" > "$tmp/creds/aws"
cat > "$tmp/policy.d/10-e2e.yaml" <<YAML
version: 1
defaults: {ttl: 10m}
rate_limit: {max_actions: 20, window: 10m}
protected:
  - unit: sshd.service
credentials:
  - {path: $tmp/creds/aws, class: aws, readers: [{unit: payments.service}]}
rules:
  - {name: reader-enforce, trigger: unexpected_reader, confidence: high, mode: enforce, response: block_egress}
YAML
cat > "$tmp/agent.yaml" <<YAML
state_dir: $tmp/state
policy_dir: $tmp/policy.d
control_socket: $sock
hostname: e2e-host
event_log:
  path: $events
bpf:
  pin_dir: $pin_dir
YAML

# --- the cgroups: the system unit, and the look-alikes (each with a process in it)
make_test_cgroups sshd.service
for d in /user.slice /user.slice/user-$lookalike_uid.slice "$user_manager"; do
  if [ ! -d "$cg_root$d" ]; then mkdir "$cg_root$d"; made_user_dirs+=("$d"); fi
done
mkdir -p "$cg_root$user_sshd" "$cg_root$plain_sshd" "$cg_root$plain_top/sshd.service"
# A long-lived process in each cgroup, so a freeze has something to stop and the refusal has a
# live unit to protect.
for d in "$cg_top/sshd.service" "$cg_root$user_sshd" "$cg_root$plain_sshd"; do
  bash -c 'echo $$ > "$0/cgroup.procs" && exec sleep 600' "$d" &
  sleepers+=($!)
done

"$agent" --config "$tmp/agent.yaml" 2>> "$tmp/agent.log" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && "$ctl" --socket "$sock" status > /dev/null 2>&1 && break; sleep 0.1; done
"$ctl" --socket "$sock" status > /dev/null || { echo "agent did not start"; tail -20 "$tmp/agent.log"; exit 1; }
ctl() { "$ctl" --socket "$sock" "$@"; }
frozen() { [ "$(cat "$cg_root$1/cgroup.freeze")" = 1 ]; }

# contained CGROUP: a manual freeze of CGROUP is taken (active), the kernel state is in force, and
# it rolls back.
contained() {
  local out handle
  out=$(ctl --json contain freeze --cgroup "$1" --ttl 10m --reason "e2e: look-alike" 2> "$tmp/err") || return 1
  handle=$(jq -r 'select(.state == "active") | .handle' <<< "$out")
  [ -n "$handle" ] && frozen "$1" && ctl rollback "$handle" > /dev/null && ! frozen "$1"
}
# refused CGROUP TEXT: the freeze is refused with TEXT in the reason and nothing is frozen.
refused() {
  ! ctl contain freeze --cgroup "$1" --ttl 10m --reason "e2e: protected" > /dev/null 2> "$tmp/err" &&
    grep -qF "$2" "$tmp/err" && ! frozen "$1"
}

# --- 1. look-alikes below a user's manager are containable, and so are their parents
check "user-manager look-alike sshd.service is containable" contained "$user_sshd"
check "its parent app.slice is containable" contained "$user_manager/app.slice"
check "the user's manager holding it is containable" contained "$user_manager"
# --- 2. look-alikes below an arbitrary cgroup, one with a process and one empty
check "test-cgroup look-alike .../app.slice/sshd.service is containable" contained "$plain_sshd"
check "its parent is containable" contained "$plain_top/app.slice"
check "a cgroup with an empty child named sshd.service is containable" contained "$plain_top"
# --- 3. the system unit sshd.service is refused, and so is the slice holding it
check "the system unit sshd.service is refused: break-glass" \
  refused "$cg_top_rel/sshd.service" "is or is inside break-glass unit sshd.service"
check "the slice holding it is refused: contains the break-glass unit" \
  refused "$cg_top_rel" "contains break-glass unit sshd.service"
# --unit sshd.service never chooses a look-alike: it is the system unit (refused), or several
# system units on a host with its own sshd, never a look-alike's path.
ctl contain freeze --unit sshd.service --ttl 10m --reason "e2e: by name" > /dev/null 2> "$tmp/unit.err" || true
check "--unit sshd.service is the system unit (refused or ambiguous among system units only)" bash -c "
  grep -qE 'break-glass unit sshd.service|matches several cgroups' '$tmp/unit.err' &&
  ! grep -qF '$plain_sshd' '$tmp/unit.err' && ! grep -qF '$user_sshd' '$tmp/unit.err'"
check "nothing of the system unit is frozen" bash -c "! grep -qx 1 '$cg_top/sshd.service/cgroup.freeze'"

# --- 4. identities and policy: readers in the look-alikes are what they are, and are contained
run_in() { bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg_root$1" "${@:2}"; }
run_in "$user_sshd" cat "$tmp/creds/aws" > /dev/null
run_in "$plain_sshd" cat "$tmp/creds/aws" > /dev/null
run_in "$cg_top_rel/sshd.service" cat "$tmp/creds/aws" > /dev/null
decision() {  # decision CGROUP: waits up to 5 s for the decision on a reader in CGROUP, prints it
  for _ in $(seq 50); do
    if jq -c --arg cg "$1" 'select(.type == "decision" and .identity.cgroup == $cg)' "$events" 2>/dev/null | head -1 |
      grep -q .; then
      jq -c --arg cg "$1" 'select(.type == "decision" and .identity.cgroup == $cg)' "$events" | head -1
      return 0
    fi
    sleep 0.1
  done
  return 1
}
d_user=$(decision "$user_sshd" || true)
d_plain=$(decision "$plain_sshd" || true)
d_real=$(decision "$cg_top_rel/sshd.service" || true)
check "the user-manager reader is a user unit of its uid, not systemd/sshd.service" jq -e --arg u "$lookalike_uid" '
  .identity.kind == "user_session" and (.identity.uri | endswith("/user/" + $u + "/session/sshd.service"))' <<< "$d_user"
check "the test-cgroup reader is a bare process" jq -e '.identity.kind == "process" and (.identity.uri | endswith("/process"))
  and (.identity.unit // "") == ""' <<< "$d_plain"
check "the user-manager reader is contained by policy (not protected)" jq -e '.outcome == "contain" and .handle.state == "active"
  and ([.gates[] | select(.gate == "protected_identity" and .result == "passed")] | length) == 1' <<< "$d_user"
check "the test-cgroup reader is contained by policy (not protected)" jq -e '.outcome == "contain" and .handle.state == "active"' \
  <<< "$d_plain"
check "the system unit's reader is systemd/sshd.service and protected: alert, no handle" jq -e '
  .identity.kind == "systemd" and (.identity.uri | endswith("/systemd/sshd.service")) and .outcome == "alert"
  and .handle == null and ([.gates[] | select(.gate == "protected_identity" and .result == "tripped")] | length) == 1' \
  <<< "$d_real"

kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=
if [ "$failures" -ne 0 ]; then echo "--- agent log"; tail -40 "$tmp/agent.log"; fi
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
