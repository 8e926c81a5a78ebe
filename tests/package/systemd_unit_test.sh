#!/usr/bin/env bash
# package: the installed agent under systemd itself, with the packaged unit's capabilities,
# hardening and syscall filter. A Debian 12 root (the cached debootstrap base) gets the .deb and
# boots its own systemd in systemd-nspawn; the test then checks, inside: Type=notify start at boot,
# the capability set the agent really holds, credential files under a 0700 home (ProtectHome=
# read-only), pins on bpffs (ReadWritePaths), freeze through cgroupfs, kill of another user's
# process (CAP_KILL), adoption of active actions across `systemctl restart`, and the removal
# behaviour: `dpkg -r` rolls back the freeze, keeps pins and the egress block; `dpkg --purge`
# removes the pins. The container has its own cgroup namespace (under a test cgroup), its own
# network namespace (loopback only), and its own bpffs instance mounted at its /sys/fs/bpf before it
# boots, as systemd does on a host: nothing of the host's /sys/fs/bpf/nhiguard is touched.
# Usage: systemd_unit_test.sh BUILD_DIR SOURCE_DIR VERSION RELEASE
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
build=$(realpath "$1")
version=$3
release=$4
deb=$build/packages/nhiguard-agent_${version}-${release}_amd64.deb
base=$build/package-test/bookworm-base.tar
work=$(mktemp -d /var/tmp/nhiguard-pkgunit.XXXXXX)
root=$work/root
bpffs=$work/bpffs
cg_root=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cg_test=$cg_root/nhiguard-pkgunit-$$
nspawn_pid=
failures=0

cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true   # the container shuts down
    for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  mountpoint -q "$bpffs" 2>/dev/null && umount -l "$bpffs"
  if [ -d "$cg_test" ]; then
    [ -f "$cg_test/cgroup.kill" ] && echo 1 > "$cg_test/cgroup.kill" 2>/dev/null || true
    for _ in $(seq 50); do
      find "$cg_test" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$cg_test" ] || break; sleep 0.1
    done
  fi
  [ -n "${KEEP_TMP:-}" ] || rm -rf --one-file-system "$work"
}
trap cleanup EXIT

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
# Runs a shell command inside the booted container (all its namespaces).
inside() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C sh -c "$1"; }

[ -f "$deb" ] || { echo "FAIL - $deb is missing (cmake --build $build --target package)"; exit 1; }
ensure_debian_base "$base"

# --- the root: the package and its Depends, a service user with a credential in a 0700 home
mkdir -p "$root"
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The collector's package joins when the build has it.
collector_deb=$build/packages/nhiguard-collector_${version}-${release}_amd64.deb
debs=("$deb"); [ -f "$collector_deb" ] && debs+=("$collector_deb")
cp "${debs[@]}" "$root/tmp/"
dep_names=$(package_dependencies "${debs[@]}")
{ in_root apt-get update -qq && in_root apt-get install -y -qq --no-install-recommends $dep_names dbus &&
  for d in "${debs[@]}"; do in_root dpkg -i "/tmp/$(basename "$d")" || exit 1; done; } > "$work/install.log" 2>&1 ||
  { tail -20 "$work/install.log"; exit 1; }
in_root useradd -m -s /bin/sh svc
mkdir -p "$root/home/svc/.aws" "$root/root/.aws"
echo '[default]' > "$root/home/svc/.aws/credentials"
echo '[default]' > "$root/root/.aws/credentials"
chmod 700 "$root/home/svc" "$root/home/svc/.aws"; chmod 600 "$root/home/svc/.aws/credentials"
in_root chown -R svc:svc /home/svc
echo nhiguard-pkgunit > "$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$root/etc/hosts"   # debootstrap writes none

# --- boot it. nspawn's own syscall filter would refuse bpf() to everything in the container;
# the unit's filter is what is under test, so the container lets these through.
mkdir "$cg_test" "$bpffs"
mount -t bpf bpf "$bpffs"   # a new bpffs instance, the container's /sys/fs/bpf
nspawn_args=(-D "$root" -b --register=no --capability=all --console=read-only --private-network
             --system-call-filter="bpf perf_event_open open_by_handle_at" -M "nhgpkg$$"
             --bind="$bpffs:/sys/fs/bpf")
if [ ! -d /run/systemd/system ]; then
  # No systemd on this host to hand out a scope: the container lives in the test's cgroup.
  nspawn_args+=(--keep-unit)
  export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
fi
(echo "$BASHPID" > "$cg_test/cgroup.procs" && exec systemd-nspawn "${nspawn_args[@]}") > "$work/nspawn.log" 2>&1 &
nspawn_pid=$!
leader=
for _ in $(seq 150); do
  leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
  [ -n "$leader" ] && break; sleep 0.2
done
[ -n "$leader" ] || { echo "FAIL - the container did not boot"; cat "$work/nspawn.log"; exit 1; }
for _ in $(seq 300); do inside 'test -S /run/systemd/private' 2>/dev/null && break; sleep 0.2; done
inside 'timeout 120 systemctl is-system-running --wait' > /dev/null 2>&1 || true

# --- started at boot, ready, with exactly the unit's capabilities
check "nhiguard-agent.service is active after boot" inside 'systemctl is-active nhiguard-agent'
check "it told systemd it is ready (Type=notify status line)" \
  sh -c "nsenter -t $leader -a systemctl show -p StatusText nhiguard-agent | grep -q 'sensor attached, control socket listening'"
agent_pid=$(inside 'systemctl show -p MainPID --value nhiguard-agent')
# CAP_KILL 5, CAP_DAC_READ_SEARCH 2, CAP_NET_ADMIN 12, CAP_SYS_PTRACE 19, CAP_PERFMON 38, CAP_BPF 39:
# no CAP_SYS_ADMIN (21). Everything below (sensor, pins, egress programs, freeze, kill, restart
# adoption, mTLS to the collector) runs without it.
expected_caps=$(printf '%016x' $(( (1 << 2) | (1 << 5) | (1 << 12) | (1 << 19) | (1 << 38) | (1 << 39) )))
check "the agent holds exactly CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_KILL" \
  inside "grep -qx 'CapEff:	$expected_caps' /proc/$agent_pid/status && grep -qx 'CapBnd:	$expected_caps' /proc/$agent_pid/status"
# Dropping CAP_SYS_ADMIN must not quietly cost a kernel feature: the unit's agent finds exactly the
# features `nhiguard-agent --check` finds with every capability (run here as the container's root).
check "without CAP_SYS_ADMIN the agent uses every kernel feature full root finds" \
  sh -c "nsenter -t $leader -a nhiguard-agent --check | awk '\$2 == \"supported\" { print \$1 }' | sort > '$work/features.root' &&
         nsenter -t $leader -a nhiguardctl --json status | jq -r '.features | to_entries[] | select(.value) | .key' | sort > '$work/features.unit' &&
         test -s '$work/features.root' && diff '$work/features.root' '$work/features.unit'"
check "no new privileges, a seccomp filter" \
  inside "grep -qx 'NoNewPrivs:	1' /proc/$agent_pid/status && grep -qx 'Seccomp:	2' /proc/$agent_pid/status"
check "pins under /sys/fs/bpf/nhiguard" test -e "$bpffs/nhiguard/nhg_credentials"
# The policy's canaries to plant, planted before the agent started (ExecStartPre, outside the sandbox).
planted=$(inside 'cat /var/lib/nhiguard/planted-canaries 2>/dev/null' || true)
if grep -qs 'plant: true' "$root"/etc/nhiguard/policy.d/*.yaml; then
  check "the policy's canaries were planted ($(echo $planted))" \
    inside 'test -s /var/lib/nhiguard/planted-canaries &&
            while read -r c; do test -f "$c" && test "$(stat -c %a "$c")" = 600 || exit 1; done < /var/lib/nhiguard/planted-canaries'
fi
check "credentials watched (the two planted here, and the canaries)" \
  sh -c "nsenter -t $leader -a nhiguardctl --json status | jq -e '.credentials_watched >= 2'"
check "a read of the credential in a 0700 home is reported (ProtectHome=read-only, CAP_DAC_READ_SEARCH)" \
  inside 'su -s /bin/sh svc -c "cat /home/svc/.aws/credentials" >/dev/null; sleep 1; grep -q "/home/svc/.aws/credentials" /var/lib/nhiguard/events.jsonl'

# --- containment under the unit's restrictions
inside 'systemd-run --unit frozen --quiet sleep 1000; systemd-run --unit blocked --quiet sleep 1000;
        systemd-run --unit victim --uid=svc --quiet sleep 1000; sleep 0.5'
check "freeze (cgroupfs writable)" \
  inside 'nhiguardctl contain freeze --unit frozen.service --ttl 1h --reason "package test" &&
          test "$(cat /sys/fs/cgroup/system.slice/frozen.service/cgroup.freeze)" = 1'
check "block-egress (pinned map written)" \
  inside 'nhiguardctl contain block-egress --unit blocked.service --ttl 1h --reason "package test"'
check "kill-process of another user's process (CAP_KILL)" \
  inside 'nhiguardctl contain kill-process --pid "$(systemctl show -p MainPID --value victim)" --reason "package test" &&
          sleep 0.5 && ! systemctl is-active victim'
inside 'systemctl restart nhiguard-agent'
check "after systemctl restart, both reversible actions are still active (adopted)" \
  inside 'test "$(nhiguardctl actions --state active | grep -c -E "freeze|block-egress")" = 2 &&
          test "$(cat /sys/fs/cgroup/system.slice/frozen.service/cgroup.freeze)" = 1'
# The feature probe's own results quote the kernel's refusals (BPF LSM is EPERM on hosts without
# lsm=...,bpf): the probe lines and the enforcement line that names the probe's reason are no denial.
check "the agent's journal has no denied operation" \
  sh -c "! nsenter -t $leader -a journalctl -u nhiguard-agent --no-pager |
         grep -v -e 'kernel feature' -e 'enforcement: tracepoint+sigkill (lsm_file_open unsupported' |
         grep -E 'Operation not permitted|Permission denied|Read-only file system|Bad system call'"

# --- the collector, unprivileged: waits for its PKI, then runs as a dynamic user with no capability
if [ -f "$collector_deb" ]; then
  check "collector not started at boot without its PKI (condition unmet, not failed)" \
    inside 'test "$(systemctl show -p ConditionResult --value nhiguard-collector)" = no &&
            ! systemctl is-failed nhiguard-collector'
  inside 'nhiguardctl certs init /etc/nhiguard/pki --agent nhiguard-pkgunit' > "$work/certs.log" 2>&1 || cat "$work/certs.log"
  check "collector active once the PKI exists" \
    inside 'systemctl start nhiguard-collector && sleep 1 && systemctl is-active nhiguard-collector'
  collector_pid=$(inside 'systemctl show -p MainPID --value nhiguard-collector')
  check "collector: a dynamic user, no capability, no new privileges, seccomp" \
    inside "! grep -q '^Uid:	0' /proc/$collector_pid/status && grep -qx 'CapEff:	0000000000000000' /proc/$collector_pid/status &&
            grep -qx 'CapBnd:	0000000000000000' /proc/$collector_pid/status && grep -qx 'NoNewPrivs:	1' /proc/$collector_pid/status &&
            grep -qx 'Seccomp:	2' /proc/$collector_pid/status"
  check "collector: listening with mTLS, its store in the state directory" \
    inside 'journalctl -u nhiguard-collector --no-pager | grep -q "listening on .*mTLS" &&
            test -s /var/lib/private/nhiguard-collector/collector.db'
  # The agent reports to it by name, over mTLS, from inside its own sandbox (name resolution and
  # TCP under RestrictAddressFamilies=, its certificate read under ProtectSystem=strict).
  inside 'sed -i "s|^  address: \"\"|  address: \"localhost:7443\"|" /etc/nhiguard/agent.yaml && systemctl restart nhiguard-agent'
  for _ in $(seq 100); do
    inside 'nhiguardctl --json status' 2>/dev/null | grep -q '"state": "connected"' && break; sleep 0.2
  done
  check "the agent connects to the collector (localhost:7443, mTLS) and its reports are acknowledged" \
    sh -c "nsenter -t $leader -a nhiguardctl --json status > '$work/status.json' &&
           jq -e '.collector.state == \"connected\" and .collector.transport == \"mtls\"' '$work/status.json' &&
           { for i in \$(seq 50); do nsenter -t $leader -a nhiguardctl --json status |
               jq -e '.collector.outbox.acked_sequence > 0' && exit 0; sleep 0.2; done; exit 1; }"
  # The agent's view of the PKI (its mount namespace, as the running agent sees it): its own pair,
  # and none of the other keys.
  check "the agent's sandbox shows its own key and hides the CA, operator, collector and issued keys" \
    inside "agent_pid=\$(systemctl show -p MainPID --value nhiguard-agent) &&
            nsenter -t \$agent_pid -m test -s /etc/nhiguard/pki/agent/agent-key.pem &&
            for key in ca/ca-key.pem operator/operator-key.pem collector/collector-key.pem agents/nhiguard-pkgunit/agent-key.pem; do
              ! nsenter -t \$agent_pid -m cat /etc/nhiguard/pki/\$key 2>/dev/null | grep -q PRIVATE || { echo \"read \$key\"; exit 1; }
            done"
  # A compromised agent: code running with the agent unit's exact sandbox (its unit file, with this
  # script as ExecStart) tries to unmount the hidden paths, mount over them, and read the keys.
  cat > "$root/usr/local/sbin/nhg-sandbox-escape" <<'PROBE'
#!/bin/sh
# umount2(2) (166) and mount(2) (165) called directly (perl-base), so the errno is the kernel's.
for p in /etc/nhiguard/pki/ca /etc/nhiguard/pki/operator; do
  perl -e '$r = syscall(166, $ARGV[0], 2); print $r == 0 ? "ESCAPED: unmounted $ARGV[0]\n" : "umount2 $ARGV[0]: $!\n"' "$p"
done
perl -e 'my ($s, $t, $f) = ("none", "/var/lib/nhiguard", "tmpfs"); $r = syscall(165, $s, $t, $f, 0, 0);
         print $r == 0 ? "ESCAPED: mounted\n" : "mount: $!\n"'
for key in /etc/nhiguard/pki/ca/ca-key.pem /etc/nhiguard/pki/operator/operator-key.pem; do
  grep -q PRIVATE "$key" 2>/dev/null && echo "ESCAPED: read $key"
done
grep -q PRIVATE /etc/nhiguard/pki/agent/agent-key.pem && echo "own key readable"
exit 0
PROBE
  chmod 755 "$root/usr/local/sbin/nhg-sandbox-escape"
  inside 'sed -e "/^ExecStartPre=/d; /^NotifyAccess=/d; /^Restart/d; /^RuntimeDirectory/d; s/^Type=notify/Type=oneshot/" \
              -e "s|^ExecStart=.*|ExecStart=/usr/local/sbin/nhg-sandbox-escape|" \
              /usr/lib/systemd/system/nhiguard-agent.service > /run/systemd/system/nhg-sandbox-escape.service &&
          systemctl daemon-reload && systemctl start nhg-sandbox-escape' > "$work/escape.log" 2>&1 || true
  inside 'journalctl -u nhg-sandbox-escape --no-pager -o cat' > "$work/escape.out" 2>&1 || true
  sed 's/^/# /' "$work/escape.out" | grep -v '^# $' | head -20
  check "inside the agent's sandbox: no unmount, no mount, no other key (mount syscalls and CAP_SYS_ADMIN gone)" \
    sh -c "grep -q 'own key readable' '$work/escape.out' && ! grep -q ESCAPED '$work/escape.out' &&
           test \$(grep -c -E '^(umount2 /etc/nhiguard/pki/(ca|operator)|mount): Operation not permitted' '$work/escape.out') = 3"
  inside 'rm -f /run/systemd/system/nhg-sandbox-escape.service; systemctl daemon-reload'
  # A PKI from before role directories (every file flat in /etc/nhiguard/pki): the collector's
  # postinst links its files into collector/, the agent reads the flat agent pair as it is, and
  # `certs init` moves the flat layout into role directories.
  inside 'cd /etc/nhiguard/pki && systemctl stop nhiguard-collector &&
          mv ca/ca-key.pem . && for r in collector agent operator; do mv $r/$r.pem $r/$r-key.pem . && rm -r $r; done && rm -r ca'
  inside '/var/lib/dpkg/info/nhiguard-collector.postinst configure 0' > "$work/relink.log" 2>&1 || true
  check "flat PKI: the collector's postinst links its three files into collector/ and the collector starts" \
    inside 'test "$(stat -c %i /etc/nhiguard/pki/collector-key.pem)" = "$(stat -c %i /etc/nhiguard/pki/collector/collector-key.pem)" &&
            systemctl start nhiguard-collector && sleep 1 && systemctl is-active nhiguard-collector'
  inside 'systemctl restart nhiguard-agent'
  for _ in $(seq 100); do
    inside 'nhiguardctl --json status' 2>/dev/null | grep -q '"state": "connected"' && break; sleep 0.2
  done
  check "flat PKI: the agent connects with the flat agent.pem, and still cannot read the flat ca-key.pem" \
    sh -c "nsenter -t $leader -a nhiguardctl --json status | jq -e '.collector.state == \"connected\"' &&
           agent_pid=\$(nsenter -t $leader -a systemctl show -p MainPID --value nhiguard-agent) &&
           ! nsenter -t \$agent_pid -m cat /etc/nhiguard/pki/ca-key.pem 2>/dev/null | grep -q PRIVATE"
  inside 'nhiguardctl certs init /etc/nhiguard/pki' > "$work/migrate.log" 2>&1 || cat "$work/migrate.log"
  check "flat PKI: certs init moves it into role directories (nothing flat but ca.pem)" \
    inside 'cd /etc/nhiguard/pki && test -s ca/ca-key.pem && test -s agent/agent-key.pem && test -s operator/operator-key.pem &&
            test "$(ls -p | grep -v /)" = ca.pem'
  inside 'sed -i "s|^  address: \"localhost:7443\"|  address: \"\"|" /etc/nhiguard/agent.yaml && systemctl restart nhiguard-agent'
  inside 'DEBIAN_FRONTEND=noninteractive dpkg --purge nhiguard-collector' > "$work/purge-collector.log" 2>&1 || true
  check "collector purged: stopped, its state removed" \
    inside '! systemctl is-active nhiguard-collector && ! test -e /var/lib/private/nhiguard-collector &&
            ! test -e /var/lib/nhiguard-collector'
fi

# --- removal: the freeze is rolled back, the egress block stays in the kernel until its TTL
inside 'DEBIAN_FRONTEND=noninteractive dpkg -r nhiguard-agent' > "$work/remove.log" 2>&1 || true
sed 's/^/# /' "$work/remove.log"
check "dpkg -r rolled back the freeze before stopping the agent" grep -q 'rolled back freeze rb_' "$work/remove.log"
check "the frozen service runs again" inside 'test "$(cat /sys/fs/cgroup/system.slice/frozen.service/cgroup.freeze)" = 0'
check "the agent is stopped" sh -c "! nsenter -t $leader -a systemctl is-active nhiguard-agent"
blocked_cgid=$(stat -c %i "/proc/$leader/root/sys/fs/cgroup/system.slice/blocked.service")
check "the egress block is still pinned (cgroup id $blocked_cgid)" \
  sh -c "bpftool -j map dump pinned '$bpffs/nhiguard/nhg_egress_blocks' | grep -q '\"key\":$blocked_cgid'"
inside 'DEBIAN_FRONTEND=noninteractive dpkg --purge nhiguard-agent' > "$work/purge.log" 2>&1 || true
sed 's/^/# /' "$work/purge.log"
check "dpkg --purge removed the pins" test ! -e "$bpffs/nhiguard"
for canary in $planted; do
  check "dpkg --purge removed the canary it planted: $canary" inside "! test -e '$canary'"
done
check "dpkg --purge kept the operator's own credential" inside 'test -s /root/.aws/credentials'
check "dpkg --purge removed the state and configuration" \
  inside '! test -e /var/lib/nhiguard && ! test -e /var/log/nhiguard && ! test -e /etc/nhiguard/agent.yaml'
if [ -f "$collector_deb" ]; then
  check "dpkg --purge kept the operator's PKI" inside 'test -s /etc/nhiguard/pki/ca.pem'
else
  check "dpkg --purge removed /etc/nhiguard" inside '! test -e /etc/nhiguard'
fi

echo "failures: $failures"
[ "$failures" -eq 0 ]
