#!/usr/bin/env bash
# openat throughput under (a) no agent, (b) nhiguard, (c) auditd with -w watches on the credential
# files, (d) a bpftrace script doing the same inode match; printed as ratios to (a).
#
# Usage (root): tests/bench/run_open_bench.sh [AGENT] [OPEN_THROUGHPUT]
#   AGENT            nhiguard-agent binary  (default /work/main/build/agent/nhiguard-agent)
#   OPEN_THROUGHPUT  the benchmark program  (default /work/main/build/tests/bench/open_throughput)
# Environment (all optional):
#   ITERATIONS=50000  timed open+close pairs per repetition
#   REPS=5            repetitions per run (open_throughput reports their median)
#   WARMUP=10000      untimed open+close pairs before the repetitions
#   ROUNDS=3          rounds of all scenarios; even rounds run them in reverse order (drift)
#   SCENARIOS="a b c d e"  e: reference floor, a bpftrace program on sys_exit_openat whose filter
#                     never matches: what any syscall-exit tracepoint costs before doing any work
#   SETTLE=2          seconds to wait after a tool reports ready (its start-up work) before timing
#   BENCH_CPU=auto    CPU to pin open_throughput to: auto = the last CPU, -1 = no pinning
#   TOOL_CPU=         if set, run the agent, auditd and bpftrace under `taskset -c TOOL_CPU`
#                     (e.g. 0 with BENCH_CPU=1: keeps a busy consumer off the benchmark's CPU)
#   BPF_STATS=1       after the table, one more nhiguard run with kernel.bpf_stats_enabled=1 to
#                     show the sensor's own time per openat (run_time_ns / run_cnt)
#   KEEP_TMP=0        1 keeps the temp dir (logs, events, audit log) for inspection
# See tests/bench/README.md for what is measured and the caveats. A benchmark, never a test.
set -euo pipefail

AGENT=${1:-/work/main/build/agent/nhiguard-agent}
BENCH=${2:-/work/main/build/tests/bench/open_throughput}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BT_SCRIPT=$SCRIPT_DIR/open_match.bt

ITERATIONS=${ITERATIONS:-50000}
REPS=${REPS:-5}
WARMUP=${WARMUP:-10000}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-a b c d e}
BENCH_CPU=${BENCH_CPU:-auto}
SETTLE=${SETTLE:-2}
TOOL_CPU=${TOOL_CPU:-}
BPF_STATS=${BPF_STATS:-1}
KEEP_TMP=${KEEP_TMP:-0}

PIN_DIR=/sys/fs/bpf/nhiguard-bench
AUDIT_KEY=nhg_bench
READY_TIMEOUT=20   # seconds a tool gets to become ready
DRAIN_TIMEOUT=60   # seconds a tool gets to report every event of a run

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'run_open_bench: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (loads BPF programs, starts auditd)"
[[ -x $BENCH ]] || die "open_throughput not found or not executable: $BENCH"
BENCH=$(readlink -f "$BENCH")
[[ -e $AGENT ]] && AGENT=$(readlink -f "$AGENT")
[[ -r $BT_SCRIPT ]] || die "bpftrace script not found: $BT_SCRIPT"

if [[ $BENCH_CPU == auto ]]; then BENCH_CPU=$(($(nproc) - 1)); fi
CPU_ARGS=()
if [[ $BENCH_CPU -ge 0 ]]; then CPU_ARGS=(--cpu "$BENCH_CPU"); fi
OPENS_PER_RUN=$((WARMUP + REPS * ITERATIONS))
TOOL_PREFIX=()
if [[ -n $TOOL_CPU ]]; then TOOL_PREFIX=(taskset -c "$TOOL_CPU"); fi

# ---------------------------------------------------------------- state, cleanup
TMP=""
AGENT_PID=""
BT_PID=""
AUDITD_PID=""          # set only when this script started auditd
AUDIT_RULE_ADDED=0
AUDIT_SAVED=0
AUDIT_ORIG_ENABLED=""
AUDIT_ORIG_BACKLOG=""
BPF_STATS_ORIG=""

stop_agent() {
  [[ -n $AGENT_PID ]] || return 0
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}

stop_bpftrace() {
  [[ -n $BT_PID ]] || return 0
  kill -INT "$BT_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$BT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BT_PID" 2>/dev/null || true
  wait "$BT_PID" 2>/dev/null || true
  BT_PID=""
}

stop_audit() {
  if [[ $AUDIT_RULE_ADDED -eq 1 ]]; then
    auditctl -W "$CRED" -p r -k "$AUDIT_KEY" >/dev/null 2>&1 || true
    AUDIT_RULE_ADDED=0
  fi
  if [[ -n $AUDITD_PID ]]; then
    kill -TERM "$AUDITD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$AUDITD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AUDITD_PID" 2>/dev/null || true
    wait "$AUDITD_PID" 2>/dev/null || true
    AUDITD_PID=""
  fi
  if [[ $AUDIT_SAVED -eq 1 ]]; then
    [[ -n $AUDIT_ORIG_BACKLOG ]] && auditctl -b "$AUDIT_ORIG_BACKLOG" >/dev/null 2>&1 || true
    [[ -n $AUDIT_ORIG_ENABLED ]] && auditctl -e "$AUDIT_ORIG_ENABLED" >/dev/null 2>&1 || true
  fi
}

cleanup() {
  local rc=$?
  set +e
  stop_agent
  stop_bpftrace
  stop_audit
  rm -rf "$PIN_DIR"
  [[ -n $BPF_STATS_ORIG ]] && sysctl -q kernel.bpf_stats_enabled="$BPF_STATS_ORIG"
  if [[ -n $TMP ]]; then
    if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- fixture
TMP=$(mktemp -d /tmp/nhg-open-bench.XXXXXX)
HOME_DIR=$TMP/home
mkdir -p "$HOME_DIR/.aws" "$TMP/state" "$TMP/policy.d" "$TMP/audit"
CRED=$HOME_DIR/.aws/credentials
PLAIN=$HOME_DIR/.aws/notes.txt   # same directory, same size, a name no credential rule knows
printf '[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n' >"$CRED"
head -c "$(stat -c %s "$CRED")" /dev/zero | tr '\0' 'x' >"$PLAIN"
chmod 600 "$CRED" "$PLAIN"
CRED_INO=$(stat -c %i "$CRED")
# super_block.s_dev is the kernel's dev_t, (major << 20) | minor, not user space's st_dev encoding.
CRED_KDEV=$(( ($(stat -c %Hd "$CRED") << 20) | $(stat -c %Ld "$CRED") ))

# ---------------------------------------------------------------- measurement
declare -A RES_NC RES_C EVENTS NOTE UNAVAILABLE

# run_bench FILE -> prints the open_throughput line
run_bench() {
  "$BENCH" --path "$1" --iterations "$ITERATIONS" --reps "$REPS" --warmup "$WARMUP" "${CPU_ARGS[@]}"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# wait_drain EXPECTED COMMAND...: poll COMMAND (prints a count) until it reaches EXPECTED or stops
# growing for 2 s; prints the last count.
wait_drain() {
  local expected=$1 n prev=-1 still=0 deadline=$((SECONDS + DRAIN_TIMEOUT))
  shift
  while :; do
    n=$("$@")
    [[ $n -ge $expected ]] && break
    if [[ $n -eq $prev ]]; then still=$((still + 1)); else still=0; fi
    [[ $still -ge 4 || $SECONDS -ge $deadline ]] && break
    prev=$n
    sleep 0.5
  done
  echo "$n"
}

# ---- (a) no agent
start_a() { return 0; }
events_a() { echo "-"; }
stop_a() { return 0; }

# ---- (b) nhiguard
# Records of opens: the summary line a reader gets at its exit (repeat_summary) is not an open.
agent_events() { if [[ -f $TMP/events.jsonl ]]; then grep '"type":"credential_access"' "$TMP/events.jsonl" | grep -vc '"repeat_summary":true' || true; else echo 0; fi; }
agent_counter() {   # sum over CPUs of nhg_counters[$1], from the pinned map
  bpftool map dump pinned "$PIN_DIR/nhg_counters" -j 2>/dev/null |
    python3 -c 'import json,sys; k=int(sys.argv[1]); print(sum(v["value"] for e in json.load(sys.stdin) if e["formatted"]["key"]==k for v in e["formatted"]["values"]))' "$1" 2>/dev/null ||
    echo "?"
}
start_b() {
  [[ -x $AGENT ]] || { REASON="agent binary not found: $AGENT"; return 1; }
  "$AGENT" --check >"$TMP/agent-check.txt" 2>&1 || { REASON="$AGENT --check failed: $(tail -n1 "$TMP/agent-check.txt")"; return 1; }
  rm -rf "$PIN_DIR" "$TMP/events.jsonl" "$TMP/state"
  mkdir -p "$TMP/state" "$TMP/policy.d"
  cat >"$TMP/agent.yaml" <<EOF
state_dir: $TMP/state
policy_dir: $TMP/policy.d
event_log: {path: $TMP/events.jsonl, max_bytes: 0}
bpf: {pin_dir: $PIN_DIR}
credentials: [{path: $CRED, class: aws}]
EOF
  "${TOOL_PREFIX[@]}" "$AGENT" --config "$TMP/agent.yaml" 2>"$TMP/agent.log" >/dev/null &
  AGENT_PID=$!
  local deadline=$((SECONDS + READY_TIMEOUT))
  until grep -q "sensor attached" "$TMP/agent.log" 2>/dev/null || [[ -e $TMP/events.jsonl ]]; do
    if ! kill -0 "$AGENT_PID" 2>/dev/null; then
      wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
      REASON="agent exited during start: $(tail -n1 "$TMP/agent.log")"; return 1
    fi
    if [[ $SECONDS -ge $deadline ]]; then stop_agent; REASON="agent not ready after ${READY_TIMEOUT}s"; return 1; fi
    sleep 0.1
  done
}
# Opens the agent has accounted for so far: records written, repeats coalesced, ring-buffer drops.
agent_accounted() {
  local records coalesced drops
  records=$(agent_events); coalesced=$(agent_counter 8); drops=$(agent_counter 0)
  [[ $coalesced =~ ^[0-9]+$ && $drops =~ ^[0-9]+$ ]] || { echo "$records"; return; }
  echo $((records + coalesced + drops))
}
events_b() {
  local n
  wait_drain "$OPENS_PER_RUN" agent_accounted > /dev/null
  n=$(agent_events)
  # Every open the program saw is a record, a repeat coalesced into a later record (one process
  # reading in a loop: one record per second), or a ring-buffer drop.
  echo "$n coalesced=$(agent_counter 8) drops=$(agent_counter 0) seen=$(agent_counter 3)"
}
stop_b() { stop_agent; rm -rf "$PIN_DIR"; }

# ---- (c) auditd with a read watch on the credential file
AUDIT_LOG=""
AUDIT_BASE=0
audit_events() { if [[ -f $AUDIT_LOG ]]; then echo $(( $(grep -c "^type=SYSCALL.*key=\"$AUDIT_KEY\"" "$AUDIT_LOG" || true) - AUDIT_BASE )); else echo 0; fi; }
start_c() {
  command -v auditd >/dev/null && command -v auditctl >/dev/null || { REASON="auditd/auditctl not installed"; return 1; }
  if [[ $AUDIT_SAVED -eq 0 ]]; then
    local status
    status=$(auditctl -s 2>&1) || { REASON="auditctl -s failed: ${status##*$'\n'}"; return 1; }
    AUDIT_ORIG_ENABLED=$(awk '$1=="enabled"{print $2}' <<<"$status")
    AUDIT_ORIG_BACKLOG=$(awk '$1=="backlog_limit"{print $2}' <<<"$status")
    AUDIT_SAVED=1
  fi
  local running_pid
  running_pid=$(auditctl -s | awk '$1=="pid"{print $2}')
  if [[ -n $running_pid && $running_pid != 0 ]] && kill -0 "$running_pid" 2>/dev/null; then
    # A system auditd: use it and its log, count only our key's records added from now on.
    AUDIT_LOG=$(sed -n 's/^[[:space:]]*log_file[[:space:]]*=[[:space:]]*//p' /etc/audit/auditd.conf)
    AUDIT_LOG=${AUDIT_LOG:-/var/log/audit/audit.log}
    NOTE[c]="system auditd (pid $running_pid), log $AUDIT_LOG"
  else
    # Our own auditd, not forking, with a private config whose log lives in the temp dir and never
    # rotates or suspends (so every record can be counted). Otherwise Debian's defaults.
    AUDIT_LOG=$TMP/audit/audit.log
    rm -f "$AUDIT_LOG"
    sed -e "s|^log_file = .*|log_file = $AUDIT_LOG|" \
        -e 's|^max_log_file_action = .*|max_log_file_action = IGNORE|' \
        -e 's|^\(space_left_action\|admin_space_left_action\|disk_full_action\|disk_error_action\) = .*|\1 = IGNORE|' \
        /etc/audit/auditd.conf >"$TMP/audit/auditd.conf"
    chmod 600 "$TMP/audit/auditd.conf"
    "${TOOL_PREFIX[@]}" auditd -n -c "$TMP/audit" >"$TMP/audit/auditd.out" 2>&1 &
    AUDITD_PID=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    until [[ $(auditctl -s 2>/dev/null | awk '$1=="pid"{print $2}') == "$AUDITD_PID" ]]; do
      if ! kill -0 "$AUDITD_PID" 2>/dev/null; then
        wait "$AUDITD_PID" 2>/dev/null || true; AUDITD_PID=""
        REASON="auditd cannot run here: $(tail -n1 "$TMP/audit/auditd.out")"; return 1
      fi
      if [[ $SECONDS -ge $deadline ]]; then stop_audit; REASON="auditd did not register with the kernel in ${READY_TIMEOUT}s"; return 1; fi
      sleep 0.1
    done
    NOTE[c]="auditd started by the bench"
  fi
  # Debian's default rules raise the backlog to 8192 (the kernel default is 64).
  auditctl -b 8192 >/dev/null
  local out
  out=$(auditctl -w "$CRED" -p r -k "$AUDIT_KEY" 2>&1) || { stop_audit; REASON="auditctl -w failed: $out"; return 1; }
  AUDIT_RULE_ADDED=1
  AUDIT_LOST_BASE=$(auditctl -s | awk '$1=="lost"{print $2}')
  AUDIT_BASE=0
  AUDIT_BASE=$(audit_events)
}
events_c() {
  local n lost
  n=$(wait_drain "$OPENS_PER_RUN" audit_events)
  lost=$(auditctl -s | awk '$1=="lost"{print $2}')
  echo "$n lost=$((lost - AUDIT_LOST_BASE))"
}
stop_c() { stop_audit; }

# ---- (d) bpftrace, open_match.bt
start_d() {
  command -v bpftrace >/dev/null || { REASON="bpftrace not installed"; return 1; }
  "${TOOL_PREFIX[@]}" bpftrace "$BT_SCRIPT" "$CRED_INO" "$CRED_KDEV" >"$TMP/bpftrace.out" 2>"$TMP/bpftrace.err" &
  BT_PID=$!
  local deadline=$((SECONDS + READY_TIMEOUT))
  # "Attaching N probes..." comes first; BEGIN's line is printed only once every probe is attached.
  until grep -q "Attaching" "$TMP/bpftrace.out" && grep -q "open_match: attached" "$TMP/bpftrace.out"; do
    if ! kill -0 "$BT_PID" 2>/dev/null; then
      wait "$BT_PID" 2>/dev/null || true; BT_PID=""
      REASON="bpftrace exited: $(grep -v WARNING "$TMP/bpftrace.err" | tail -n1)"; return 1
    fi
    if [[ $SECONDS -ge $deadline ]]; then stop_bpftrace; REASON="bpftrace not attached after ${READY_TIMEOUT}s"; return 1; fi
    sleep 0.1
  done
}
events_d() { echo "pending"; }   # known only once bpftrace exits, see stop_d
stop_d() {
  stop_bpftrace
  local n
  n=$(sed -n 's/^@matches: \([0-9]*\).*/\1/p' "$TMP/bpftrace.out" | head -n1)
  D_EVENTS=${n:-0}
}

# ---- (e) floor: an attached sys_exit_openat program that does nothing (filter never true)
start_e() {
  command -v bpftrace >/dev/null || { REASON="bpftrace not installed"; return 1; }
  "${TOOL_PREFIX[@]}" bpftrace -e 'BEGIN { printf("open_match: attached\n"); }
    tracepoint:syscalls:sys_exit_openat /args->ret == -4095/ { @never = count(); }' \
    >"$TMP/floor.out" 2>"$TMP/floor.err" &
  BT_PID=$!
  local deadline=$((SECONDS + READY_TIMEOUT))
  until grep -q "open_match: attached" "$TMP/floor.out"; do
    if ! kill -0 "$BT_PID" 2>/dev/null; then
      wait "$BT_PID" 2>/dev/null || true; BT_PID=""
      REASON="bpftrace exited: $(grep -v WARNING "$TMP/floor.err" | tail -n1)"; return 1
    fi
    if [[ $SECONDS -ge $deadline ]]; then stop_bpftrace; REASON="bpftrace not attached after ${READY_TIMEOUT}s"; return 1; fi
    sleep 0.1
  done
}
events_e() { echo "-"; }
stop_e() { stop_bpftrace; }

# ---------------------------------------------------------------- preflight
log "open_throughput: $BENCH; agent: $AGENT; iterations=$ITERATIONS reps=$REPS warmup=$WARMUP rounds=$ROUNDS cpu=$BENCH_CPU tool_cpu=${TOOL_CPU:-any}"
log "credential: $CRED (ino $CRED_INO, kernel dev $CRED_KDEV); non-credential: $PLAIN ($(stat -c %s "$PLAIN") bytes each)"
if command -v bpftool >/dev/null; then
  others=$(bpftool prog show 2>/dev/null | awk '/ name /{for(i=1;i<=NF;i++) if($i=="name") print $(i+1)}' | grep -E '^(sensor_|tracepoint__|kprobe__)' | sort | uniq -c | tr '\n' ' ' || true)
  [[ -n $others ]] && log "WARNING: BPF programs already loaded that may sit on the open path: $others"
fi
if [[ $(auditctl -s 2>/dev/null | awk '$1=="enabled"{print $2}') != 0 ]]; then
  log "NOTE: audit is enabled at start; every scenario pays audit's syscall entry/exit work"
fi

# ---------------------------------------------------------------- rounds
read -r -a ORDER <<<"$SCENARIOS"
for ((round = 1; round <= ROUNDS; round++)); do
  order=("${ORDER[@]}")
  if ((round % 2 == 0)); then
    order=(); for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do order+=("${ORDER[i]}"); done
  fi
  for s in "${order[@]}"; do
    [[ -n ${UNAVAILABLE[$s]:-} ]] && continue
    REASON=""
    if ! "start_$s"; then
      UNAVAILABLE[$s]=${REASON:-start failed}
      log "round $round ($s): unavailable: ${UNAVAILABLE[$s]}"
      continue
    fi
    sleep "$SETTLE"   # every scenario, (a) included, so the timing around runs stays the same
    nc_line=$(run_bench "$PLAIN")
    c_line=$(run_bench "$CRED")
    ev=$("events_$s")
    "stop_$s"
    [[ $s == d ]] && ev=$D_EVENTS
    RES_NC[$s]+="$(field median_ns "$nc_line") "
    RES_C[$s]+="$(field median_ns "$c_line") "
    EVENTS[$s]+="${ev// /,};"
    log "round $round ($s): non-credential $(field median_ns "$nc_line") ns/op (min $(field min_ns "$nc_line")), credential $(field median_ns "$c_line") ns/op (min $(field min_ns "$c_line")), events: $ev (loadavg $(cut -d' ' -f1 /proc/loadavg))"
  done
done

# ---------------------------------------------------------------- table
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{if(NR==0){print "";exit} if(NR%2) printf "%.1f", v[(NR+1)/2]; else printf "%.1f", (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { [[ -n $1 && -n $2 ]] && awk -v x="$1" -v y="$2" 'BEGIN{printf "%.3f", x/y}' || echo "-"; }

A_NC=$(median "${RES_NC[a]:-}")
A_C=$(median "${RES_C[a]:-}")
declare -A LABEL=([a]="(a) no agent" [b]="(b) nhiguard" [c]="(c) auditd -w" [d]="(d) bpftrace" [e]="(e) tp floor")
echo
echo "openat+close ns/op, median over $ROUNDS round(s) of each run's median of $REPS x $ITERATIONS; events per credential run (expected $OPENS_PER_RUN each)"
printf '%-16s %12s %8s %12s %8s  %s\n' scenario non-cred ratio cred ratio "events on the credential run, per round"
for s in "${ORDER[@]}"; do
  if [[ -n ${UNAVAILABLE[$s]:-} && -z ${RES_NC[$s]:-} ]]; then
    printf '%-16s %s\n' "${LABEL[$s]:-$s}" "unavailable: ${UNAVAILABLE[$s]}"
    continue
  fi
  nc=$(median "${RES_NC[$s]:-}")
  c=$(median "${RES_C[$s]:-}")
  printf '%-16s %12s %8s %12s %8s  %s\n' "${LABEL[$s]:-$s}" "$nc" "$(ratio "$nc" "$A_NC")" "$c" "$(ratio "$c" "$A_C")" "${EVENTS[$s]%;}"
done
for s in "${ORDER[@]}"; do [[ -n ${NOTE[$s]:-} ]] && echo "note ($s): ${NOTE[$s]}"; done
[[ " ${ORDER[*]} " == *" e "* ]] && echo "(e) is a reference, not a contender: an empty sys_exit_openat program, the floor of any syscall-tracepoint sensor"
echo "targets: (b) <= 1.03 non-credential, <= 1.10 credential, and below (c) and (d)"

# ---------------------------------------------------------------- where nhiguard's time goes
if [[ $BPF_STATS == 1 && " ${ORDER[*]} " == *" b "* && -z ${UNAVAILABLE[b]:-} ]]; then
  BPF_STATS_ORIG=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -q kernel.bpf_stats_enabled=1
  prog_stats() {   # "run_time_ns run_cnt name" of the agent's openat program (either variant)
    bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
pid = int(sys.argv[1])
names = ("sensor_exit_openat", "sensor_exit_openat_direct")
progs = [p for p in json.load(sys.stdin) if p.get("name") in names]
# Prefer the program our agent holds (bpftool lists holders as "pids"); else the only one there is.
mine = [p for p in progs if any(q.get("pid") == pid for q in p.get("pids", []))] or progs[-1:]
print(*(mine[0].get(k, 0) for k in ("run_time_ns", "run_cnt", "name")) if mine else (0, 0, "?"))' "$AGENT_PID"
  }
  REASON=""
  if start_b; then
    sleep "$SETTLE"
    echo
    read -r _ _ prog_name <<<"$(prog_stats)"
    echo "nhiguard $prog_name with kernel.bpf_stats_enabled=1 (stats add their own ~2 clock reads per run):"
    for f in "$PLAIN" "$CRED"; do
      read -r t0 c0 _ <<<"$(prog_stats)"
      line=$(run_bench "$f")
      read -r t1 c1 _ <<<"$(prog_stats)"
      runs=$((c1 - c0))
      per=$([[ $runs -gt 0 ]] && awk -v t=$((t1 - t0)) -v c=$runs 'BEGIN{printf "%.1f", t/c}' || echo "?")
      printf '  %-15s %8s ns/op (open+close), program: %s runs, %s ns/run\n' \
        "$([[ $f == "$CRED" ]] && echo credential || echo non-credential)" "$(field median_ns "$line")" "$runs" "$per"
    done
    agent_cpu=$(awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$AGENT_PID/stat")
    echo "  agent user+sys CPU during this run: ${agent_cpu}s"
    stop_b
  else
    echo "bpf stats run: agent unavailable: $REASON"
  fi
  sysctl -q kernel.bpf_stats_enabled="$BPF_STATS_ORIG"
  BPF_STATS_ORIG=""
fi
