#!/usr/bin/env bash
# The kernel matrix: boots one of Debian's cloud kernels under QEMU (TCG) with BPF LSM on, from an
# initramfs that carries the bpf tier's gtest binary, runs it there and reports the guest's summary.
#
#   guest_test.sh <linux-image meta-package> <cache dir> <timeout seconds> <gtest filter>
#                 <open variant the kernel must load: direct|probe_read> <test binary> <agent binary>
#
# The kernel package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` under the
# cache dir, once; nothing is installed on the host and the host's kernel state is not touched, so
# this needs no kernel-tests lock. Fails when the guest cannot boot, times out, or its run fails or
# skips a test.
set -euo pipefail
meta=$1 cache=$2 timeout_s=$3 filter=$4 open_variant=$5 test_bin=$6 agent_bin=$7

# Which kernel modules the bpf tier needs that Debian's cloud kernels may build as modules (veth:
# the egress tests' network namespace pair; loop: the block device tests' loop device). A module
# the kernel has built in is not loaded. Everything else the tier uses is built in (BPF, BTF, BPF
# LSM, cgroup BPF, netns, IPv6, syscall tracepoints).
modules=(veth loop)

for tool in apt-get apt-cache dpkg-deb qemu-system-x86_64 busybox cpio ldd objcopy xz ip; do
  command -v "$tool" >/dev/null || { echo "kernel tier: $tool is missing (scripts/install-deps.sh)"; exit 1; }
done
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' ||
  { echo "kernel tier: /bin/busybox must be busybox-static"; exit 1; }

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# The meta-package names the current image package; the image package's name carries its ABI.
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "kernel tier: apt knows no image behind $meta (apt-get update?)"; exit 1; }
tree=$cache/$pkg
(
  # Two kernels' tests may start at once: one download and one unpack per package.
  flock 9
  if [ ! -e "$tree/.unpacked" ]; then
    if ! ls "$cache/${pkg}"_*.deb >/dev/null 2>&1; then
      echo "kernel tier: downloading $pkg"
      (cd "$cache" && apt-get download "$pkg")
    fi
    rm -rf "$tree"
    dpkg-deb -x "$(ls "$cache/${pkg}"_*.deb | head -1)" "$tree"
    touch "$tree/.unpacked"
  fi
) 9>"$cache/.lock"
kver=$(ls "$tree/lib/modules")
vmlinuz=$tree/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || { echo "kernel tier: no kernel image in $pkg"; exit 1; }

work=$(mktemp -d "$cache/guest-$kver.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,opt/nhiguard,lib/modules,usr/bin,usr/sbin}

# Binaries with every shared library they load, at the paths the dynamic loader looks in.
copy_with_libs() {
  local bin=$1 dest=$2
  objcopy --strip-debug "$bin" "$root$dest"
  chmod 755 "$root$dest"
  ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
    [ -e "$root$lib" ] || cp -L --parents "$lib" "$root"
  done
}
cp /bin/busybox "$root/bin/busybox"
# busybox's applets as links made here, so that the real iproute2 (the tests need `ip netns` and veth,
# which busybox's ip lacks) is not shadowed by one.
busybox --list-full | grep -vx bin/busybox | while read -r applet; do
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done
rm -f "$root"/{bin,sbin,usr/bin,usr/sbin}/ip "$root/bin/sh"
copy_with_libs "$test_bin" /opt/nhiguard/nhiguard_bpf_tests
copy_with_libs "$agent_bin" /opt/nhiguard/nhiguard-agent
copy_with_libs "$(command -v ip)" /usr/sbin/ip
# Debian's busybox-static shell runs its own applets before PATH, so popen()'s /bin/sh is dash.
copy_with_libs "$(readlink -f /bin/sh)" /bin/sh
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "nhiguard-guest" >"$root/etc/hostname"

# Modules in dependency order, uncompressed (busybox insmod reads plain .ko files).
: >"$root/lib/modules/order"
add_module() {
  local name=$1 file dep
  grep -qx "$name" "$root/lib/modules/order" && return 0
  file=$(find "$tree/lib/modules/$kver" -name "$name.ko" -o -name "$name.ko.xz" | head -1)
  [ -n "$file" ] || { echo "kernel tier: module $name missing from $pkg"; exit 1; }
  case $file in
    *.xz) xz -dc "$file" >"$root/lib/modules/$name.ko" ;;
    *) cp "$file" "$root/lib/modules/$name.ko" ;;
  esac
  # The module's own record of what it needs loaded first (what modinfo -F depends prints).
  objcopy -O binary --only-section=.modinfo "$root/lib/modules/$name.ko" "$work/modinfo"
  for dep in $(tr '\0' '\n' <"$work/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '); do add_module "$dep"; done
  echo "$name" >>"$root/lib/modules/order"
}
for m in "${modules[@]}"; do
  if ! grep -q "/$m.ko" "$tree/lib/modules/$kver/modules.builtin" 2>/dev/null; then add_module "$m"; fi
done

cat >"$root/init" <<EOF
#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
while read -r m; do insmod /lib/modules/\$m.ko || echo "nhiguard-guest: insmod \$m failed"; done </lib/modules/order
echo "nhiguard-guest: kernel \$(uname -r) lsm \$(cat /sys/kernel/security/lsm 2>/dev/null || echo unknown)"
cd /tmp
/opt/nhiguard/nhiguard-agent --check 2>&1 | sed 's/^/nhiguard-guest: check: /'
/opt/nhiguard/nhiguard_bpf_tests --gtest_filter='$filter' --gtest_color=no
echo "nhiguard-guest: rc=\$?"
poweroff -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initrd"

log=$work/console.log
echo "kernel tier: booting $kver (TCG, BPF LSM on), timeout ${timeout_s}s"
start=$(date +%s)
set +e
# thread=single: one host thread runs both vCPUs in turn. Under multi-threaded TCG a vCPU can run a
# stale translation of kernel text that another vCPU just patched back (a BPF trampoline detached
# from a hot LSM hook such as file_permission), hitting the int3 of the finished text_poke: an oops
# of the emulator's making (seen on 6.12), not of the programs under test.
timeout "$timeout_s" qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 2048 \
  -display none -monitor none -serial stdio -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initrd" \
  -append "console=ttyS0 lsm=lockdown,capability,bpf panic=-1 quiet" </dev/null | tr -d '\r' | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$log" | tail -1)
failed=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | tail -1)
skipped=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | tail -1)
guest_rc=$(sed -nE 's/^nhiguard-guest: rc=([0-9]+).*/\1/p' "$log" | tail -1)
echo "kernel tier: $kver: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped in ${elapsed}s"
if [ "$qemu_rc" = 124 ]; then echo "kernel tier: $kver: the guest timed out after ${timeout_s}s"; exit 1; fi
[ -n "$guest_rc" ] || { echo "kernel tier: $kver: the guest did not finish the run (qemu rc $qemu_rc)"; exit 1; }
[ "$guest_rc" = 0 ] || { echo "kernel tier: $kver: the guest's gtest run failed (rc $guest_rc)"; exit 1; }
[ "${skipped:-0}" = 0 ] || { echo "kernel tier: $kver: tests skipped in the guest"; exit 1; }
[ "${passed:-0}" -gt 0 ] || { echo "kernel tier: $kver: no test ran"; exit 1; }
# The sensor falls back from the direct open programs to bpf_probe_read_kernel with a warning
# (agent/src/kernel/sensor_loader.cpp); which of the two this kernel loaded is part of the matrix.
if grep -q 'the direct open programs did not load' "$log"; then loaded=probe_read; else loaded=direct; fi
[ "$loaded" = "$open_variant" ] ||
  { echo "kernel tier: $kver: the sensor loaded the $loaded open variant, the matrix expects $open_variant"; exit 1; }
echo "kernel tier: $kver: the sensor loaded the $loaded open variant"
# The matrix is where the optional upgrades run: the agent's feature probe must accept them here.
for feature in fentry lsm_file_open; do
  grep -qE "^nhiguard-guest: check: $feature +supported" "$log" ||
    { echo "kernel tier: $kver: the agent's --check does not report $feature supported"; exit 1; }
done
echo "kernel tier: $kver: --check reports fentry and lsm_file_open supported"
# With BPF LSM active the agent enforces denies and blocks in the LSM hooks (bpf/lsm.bpf.c).
grep -qE "^nhiguard-guest: check: enforcement +lsm " "$log" ||
  { echo "kernel tier: $kver: the agent's --check does not choose the lsm enforcement path"; exit 1; }
echo "kernel tier: $kver: --check chooses the lsm enforcement path"
