#!/usr/bin/env bash
# package: the nhiguard-agent .deb in a fresh Debian 12 root made by debootstrap. Installs it with
# dpkg -i (its Depends, which dpkg-shlibdeps computed, installed first from Debian by name, so dpkg
# checks their versions), checks every installed file, the directories and enable state the
# maintainer scripts leave, `nhiguard-agent --version` and `systemd-analyze verify` on the units;
# upgrades to a rebuild with the next package revision after editing agent.yaml and checks the
# edit survived; removes (data, conffiles and pins kept) and purges (all gone). The root gets a
# bpffs instance of its own, so the pin handling runs against a real bpffs without touching the
# host's /sys/fs/bpf/nhiguard.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR VERSION RELEASE
# The debootstrapped base is cached as BUILD_DIR/package-test/bookworm-base.tar (refreshed weekly).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
build=$(realpath "$1")
src=$(realpath "$2")
version=$3
release=$4
next_release=$((release + 1))
packages=$build/packages
deb=$packages/nhiguard-agent_${version}-${release}_amd64.deb
base=$build/package-test/bookworm-base.tar
work=$(mktemp -d /var/tmp/nhiguard-pkgtest.XXXXXX)
root=$work/root
failures=0

cleanup() {
  for m in "$root/sys/fs/bpf" "$root/proc"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  [ -n "${KEEP_TMP:-}" ] || rm -rf --one-file-system "$work"
}
trap cleanup EXIT

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
same_lines() {  # same_lines FILE_A FILE_B: equal as sorted sets, differences shown
  diff <(sort -u "$1") <(sort -u "$2")
}
mode_of() { stat -c '%a %U:%G' "$root$1"; }

[ -f "$deb" ] || { echo "FAIL - $deb is missing (cmake --build $build --target package)"; exit 1; }

# --- the upgrade build: the same tree, the next package revision
(cd "$build" && cpack -G DEB -D CPACK_DEBIAN_PACKAGE_RELEASE="$next_release" -B "$work/next" \
   -D CPACK_OUTPUT_FILE_PREFIX="$work/next" > "$work/cpack-next.log" 2>&1) ||
  { cat "$work/cpack-next.log"; exit 1; }
deb_next=$work/next/nhiguard-agent_${version}-${next_release}_amd64.deb
check "cpack builds the next revision ${version}-${next_release}" test -f "$deb_next"

# --- a fresh Debian 12 root
ensure_debian_base "$base"
mkdir -p "$root"
tar -C "$root" -xf "$base"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mkdir -p "$root/sys/fs/bpf"
mount -t bpf bpf "$root/sys/fs/bpf"   # a new bpffs instance, private to this root
cp "$deb" "$deb_next" "$root/tmp/"

echo "# Depends: $(dpkg-deb -f "$deb" Depends)"
dep_names=$(package_dependencies "$deb")
in_root apt-get update -qq > "$work/apt.log" 2>&1 &&
  in_root apt-get install -y -qq --no-install-recommends $dep_names >> "$work/apt.log" 2>&1 ||
  { tail -20 "$work/apt.log"; exit 1; }

# --- install
check "dpkg -i $(basename "$deb")" in_root dpkg -i "/tmp/$(basename "$deb")"
check "dpkg reports ${version}-${release} installed" \
  test "$(in_root dpkg-query -W -f='${Status} ${Version}' nhiguard-agent)" = "install ok installed ${version}-${release}"

expected_files=$work/expected-files
{
  echo /usr/sbin/nhiguard-agent
  echo /usr/bin/nhiguardctl
  echo /etc/nhiguard/agent.yaml
  for policy in "$src"/packaging/policy.d/*.yaml; do
    [ -e "$policy" ] && echo "/etc/nhiguard/policy.d/$(basename "$policy")"
  done
  echo /usr/lib/systemd/system/nhiguard-agent.service
  echo /usr/share/man/man8/nhiguard-agent.8.gz
  echo /usr/share/man/man8/nhiguardctl.8.gz
  echo /usr/share/doc/nhiguard-agent/README.md
  echo /usr/share/doc/nhiguard-agent/copyright
  echo /usr/share/doc/nhiguard-agent/changelog.Debian.gz
} > "$expected_files"
in_root dpkg -L nhiguard-agent | while read -r path; do [ -d "$root$path" ] || echo "$path"; done > "$work/installed-files"
check "the package installs exactly the expected files" same_lines "$expected_files" "$work/installed-files"
while read -r path; do
  check "installed: $path" test -f "$root$path"
done < "$expected_files"
check "agent binary 755 root:root" test "$(mode_of /usr/sbin/nhiguard-agent)" = "755 root:root"
check "nhiguardctl 755 root:root" test "$(mode_of /usr/bin/nhiguardctl)" = "755 root:root"
check "agent.yaml 644 root:root, the packaged default" \
  sh -c "test \"$(mode_of /etc/nhiguard/agent.yaml)\" = '644 root:root' && cmp '$src/packaging/agent.yaml' '$root/etc/nhiguard/agent.yaml'"
check "policy.d 755 root:root" test "$(mode_of /etc/nhiguard/policy.d)" = "755 root:root"
for policy in "$src"/packaging/policy.d/*.yaml; do
  [ -e "$policy" ] || continue
  check "policy $(basename "$policy") as shipped" cmp "$policy" "$root/etc/nhiguard/policy.d/$(basename "$policy")"
done
check "unit file is the built one" cmp "$build/packaging/systemd/nhiguard-agent.service" "$root/usr/lib/systemd/system/nhiguard-agent.service"
in_root dpkg-query -W -f='${Conffiles}\n' nhiguard-agent | awk 'NF { print $1 }' > "$work/conffiles"
grep '^/etc/' "$expected_files" > "$work/expected-conffiles"
check "conffiles: agent.yaml and every policy" same_lines "$work/expected-conffiles" "$work/conffiles"
for dir in /var/lib/nhiguard /var/log/nhiguard /etc/nhiguard/pki; do
  check "postinst made $dir (700 root:root)" test "$(mode_of "$dir")" = "700 root:root"
done
# deb-systemd-helper links /lib/systemd/system/... where /lib exists: on merged /usr the same file.
wants_link=$(readlink "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service" || true)
check "enabled: multi-user.target.wants/nhiguard-agent.service -> the unit ($wants_link)" \
  sh -c "case '$wants_link' in /lib/systemd/system/nhiguard-agent.service|/usr/lib/systemd/system/nhiguard-agent.service) \
           cmp '$root$wants_link' '$build/packaging/systemd/nhiguard-agent.service' ;; *) exit 1 ;; esac"
check "every shared library of the agent resolves in the root" \
  sh -c "! chroot '$root' ldd /usr/sbin/nhiguard-agent /usr/bin/nhiguardctl | grep 'not found'"
check "nhiguard-agent --version prints $version" \
  test "$(in_root nhiguard-agent --version)" = "nhiguard-agent $version"
check "nhiguardctl runs (--help)" in_root nhiguardctl --help
for unit in "$root"/usr/lib/systemd/system/nhiguard-*.service; do
  name=$(basename "$unit")
  check "systemd-analyze verify $name: exit 0, no complaint" \
    sh -c "out=\$(chroot '$root' systemd-analyze verify /usr/lib/systemd/system/$name 2>&1) || { echo \"\$out\"; exit 1; }
           ! echo \"\$out\" | grep -i nhiguard || { echo \"\$out\"; exit 1; }"
done

# --- upgrade with a locally edited configuration
sed -i 's/^mode: policy$/mode: observe  # edited on this host by the install test/' "$root/etc/nhiguard/agent.yaml"
check "the edit is in place" grep -q 'edited on this host' "$root/etc/nhiguard/agent.yaml"
check "dpkg -i $(basename "$deb_next") (no prompt: stdin is /dev/null)" \
  sh -c "chroot '$root' env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/$(basename "$deb_next") < /dev/null"
check "dpkg reports ${version}-${next_release} installed" \
  test "$(in_root dpkg-query -W -f='${Status} ${Version}' nhiguard-agent)" = "install ok installed ${version}-${next_release}"
check "the edited agent.yaml survived the upgrade" grep -q '^mode: observe  # edited on this host' "$root/etc/nhiguard/agent.yaml"
check "no .dpkg-new/.dpkg-dist left beside it" sh -c "! ls '$root'/etc/nhiguard/*.dpkg-* 2>/dev/null | grep ."
check "still enabled after the upgrade" test -L "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service"
check "changelog names ${version}-${next_release}" \
  sh -c "zcat '$root/usr/share/doc/nhiguard-agent/changelog.Debian.gz' | head -1 | grep -F '(${version}-${next_release})'"

# --- remove: data, conffiles and pinned kernel state stay
mkdir -p "$root/sys/fs/bpf/nhiguard"
bpftool map create "$root/sys/fs/bpf/nhiguard/nhg_test_pin" type hash key 4 value 4 entries 1 name nhg_test_pin
touch "$root/var/lib/nhiguard/ledger.db"
check "dpkg -r nhiguard-agent" in_root dpkg -r nhiguard-agent
for gone in /usr/sbin/nhiguard-agent /usr/bin/nhiguardctl /usr/lib/systemd/system/nhiguard-agent.service; do
  check "removed: $gone" test ! -e "$root$gone"
done
check "kept: the edited agent.yaml" grep -q 'edited on this host' "$root/etc/nhiguard/agent.yaml"
check "kept: /var/lib/nhiguard with the ledger" test -f "$root/var/lib/nhiguard/ledger.db"
check "kept: the pinned kernel state" test -e "$root/sys/fs/bpf/nhiguard/nhg_test_pin"
check "masked while removed" test "$(readlink "$root/etc/systemd/system/nhiguard-agent.service")" = /dev/null

# --- purge: nothing of the package is left
check "dpkg --purge nhiguard-agent" in_root dpkg --purge nhiguard-agent
check "dpkg no longer knows nhiguard-agent" sh -c "! chroot '$root' dpkg-query -W nhiguard-agent"
for gone in /etc/nhiguard /var/lib/nhiguard /var/log/nhiguard /sys/fs/bpf/nhiguard \
            /etc/systemd/system/nhiguard-agent.service /etc/systemd/system/multi-user.target.wants/nhiguard-agent.service \
            /var/lib/systemd/deb-systemd-helper-enabled/nhiguard-agent.service.dsh-also \
            /var/lib/systemd/deb-systemd-helper-masked/nhiguard-agent.service /usr/share/doc/nhiguard-agent; do
  check "purged: $gone" sh -c "! test -e '$root$gone' && ! test -L '$root$gone'"
done
rm -f "$root"/tmp/nhiguard-*.deb
find "$root" -xdev -name '*nhiguard*' > "$work/left" || true
check "no path named *nhiguard* left in the root" test ! -s "$work/left"
cat "$work/left"

echo "failures: $failures"
[ "$failures" -eq 0 ]
