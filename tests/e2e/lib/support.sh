# Helpers shared by the e2e scripts; sourced, not a test (only *_test.sh files are tests).
# The caller sets `failures=0` before the first check.

check() {  # check DESCRIPTION COMMAND...: one "ok"/"FAIL" line, failures counted
  local what=$1; shift
  if "$@" > /dev/null 2>&1; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}

# start_remote NETNS HOST_IF NET PORT RECEIVED: the "remote host" of a test — network namespace
# NETNS joined by a veth pair (HOST_IF on this side as NET.1/24, NET.2 inside), with a TCP listener
# on PORT appending what it receives to RECEIVED. Sets listener_pid; the caller's cleanup kills it
# and deletes NETNS and HOST_IF.
start_remote() {
  local ns=$1 host_if=$2 net=$3 port=$4 received=$5
  ip netns add "$ns"
  ip link add "$host_if" type veth peer name "${host_if}p"
  ip link set "${host_if}p" netns "$ns"
  ip addr add "$net.1/24" dev "$host_if"
  ip link set "$host_if" up
  ip -n "$ns" addr add "$net.2/24" dev "${host_if}p"
  ip -n "$ns" link set "${host_if}p" up
  ip -n "$ns" link set lo up
  : > "$received"
  ip netns exec "$ns" socat -u "TCP-LISTEN:$port,fork,reuseaddr" "OPEN:$received,append" &
  listener_pid=$!
  for _ in $(seq 50); do ip netns exec "$ns" ss -ltn | grep -q ":$port" && break; sleep 0.1; done
}

# stop_remote NETNS HOST_IF: undoes start_remote (kills listener_pid, deletes the namespace and
# the veth pair); safe to call when start_remote never ran or ran halfway.
stop_remote() {
  [ -n "${listener_pid:-}" ] && kill "$listener_pid" 2>/dev/null || true
  # Whatever still runs in the namespace (a listener the kill missed, or one serving a connection
  # whose peer went with the veth) would outlive the test, holding ctest's output pipe and the
  # kernel-tests lock it inherited: every such process goes with the namespace.
  if ip netns pids "$1" > /dev/null 2>&1; then ip netns pids "$1" | xargs -r kill -KILL 2>/dev/null || true; fi
  ip netns del "$1" 2>/dev/null || true
  ip link del "$2" 2>/dev/null || true
}

# cgroup2_root: where cgroup v2 is mounted, from /proc/self/mountinfo (/sys/fs/cgroup on modern
# hosts, /sys/fs/cgroup/unified on hybrid ones); empty when it is not.
cgroup2_root() {
  awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

# test_top NAME: the test's top cgroup where the system service manager puts units, so that
# $cg_top/x.service is the system unit x.service (a unit name anywhere else is only a look-alike):
# sets cg_top=$cg_root/system.slice/NAME.slice and cg_top_rel=/system.slice/NAME.slice (the path
# the agent reports). Creates nothing; make_test_cgroups does. Needs cg_root.
test_top() {
  cg_top_rel=/system.slice/$1.slice
  cg_top=$cg_root$cg_top_rel
}

# make_test_cgroups SUB...: makes $cg_top/SUB for each SUB, and first /system.slice when it is
# missing (a host whose PID 1 is not systemd); remove_test_top removes that again only if this
# script made it.
make_test_cgroups() {
  if [ ! -d "$cg_root/system.slice" ] && mkdir "$cg_root/system.slice" 2>/dev/null; then made_system_slice=1; fi
  local sub
  for sub in "$@"; do mkdir -p "$cg_top/$sub"; done
}

# remove_test_top: remove_test_cgroups $cg_top, then /system.slice if make_test_cgroups made it and
# nothing else is in it.
remove_test_top() {
  remove_test_cgroups "$cg_top"
  if [ -n "${made_system_slice:-}" ]; then rmdir "$cg_root/system.slice" 2>/dev/null || true; fi
}

# remove_test_cgroups TOP: thaws, kills and removes every cgroup directly below TOP, then TOP.
remove_test_cgroups() {
  local cg
  for cg in "$1"/*/ "$1"; do
    [ -d "$cg" ] || continue
    echo 0 > "$cg/cgroup.freeze" 2>/dev/null || true
    [ -f "$cg/cgroup.kill" ] && echo 1 > "$cg/cgroup.kill" 2>/dev/null || true
    for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
  done
}

# wait_agent_ready PID NHIGUARDCTL SOCKET: waits up to 10 s until the agent PID answers
# `nhiguardctl status` on SOCKET; fails at once when the agent exits first.
wait_agent_ready() {
  local pid=$1 ctl=$2 sock=$3
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ -S "$sock" ] && "$ctl" --socket "$sock" status > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
