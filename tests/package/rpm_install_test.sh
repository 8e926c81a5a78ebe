#!/usr/bin/env bash
# package: the nhiguard-agent .rpm installed, upgraded and erased with rpm --root in a scratch root
# (the debootstrapped Debian base, which has the /bin/sh and systemctl the scriptlets call; rpm's
# database there is empty, hence --nodeps). Checks what the RPM scriptlets and %config(noreplace)
# do: %post makes the directories and applies the preset policy, which here says "disable", as on
# Fedora/RHEL for a package's own service, so nothing is enabled or started; an upgrade to the next
# release keeps an edited agent.yaml without an .rpmnew; erase removes the files, saves the edited
# configuration as agent.yaml.rpmsave, and keeps the state directory (RPM has no purge). Where the
# preset says "enable", %post enables the unit and %preun disables it on erase.
# Usage: rpm_install_test.sh BUILD_DIR SOURCE_DIR VERSION RELEASE
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
build=$(realpath "$1")
version=$3
release=$4
next_release=$((release + 1))
rpm_file=$build/packages/nhiguard-agent-${version}-${release}.x86_64.rpm
base=$build/package-test/bookworm-base.tar
work=$(mktemp -d /var/tmp/nhiguard-pkgrpm.XXXXXX)
root=$work/root
failures=0
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf --one-file-system "$work"' EXIT

rpm_root() { rpm --root "$root" --dbpath /var/lib/rpm "$@"; }
mode_of() { stat -c '%a %U:%G' "$root$1"; }

[ -f "$rpm_file" ] || { echo "FAIL - $rpm_file is missing (cmake --build $build --target package)"; exit 1; }
(cd "$build" && cpack -G RPM -D CPACK_RPM_PACKAGE_RELEASE="$next_release" -B "$work/next" \
   -D CPACK_OUTPUT_FILE_PREFIX="$work/next" > "$work/cpack-next.log" 2>&1) ||
  { cat "$work/cpack-next.log"; exit 1; }
rpm_next=$work/next/nhiguard-agent-${version}-${next_release}.x86_64.rpm
check "cpack builds the next release ${version}-${next_release}" test -f "$rpm_next"

ensure_debian_base "$base"
mkdir -p "$root"
tar -C "$root" -xf "$base"
mkdir -p "$root/etc/systemd/system-preset"
echo 'disable nhiguard-agent.service' > "$root/etc/systemd/system-preset/00-nhiguard-test.preset"
rpm_root --initdb

# --- install
check "rpm -i $(basename "$rpm_file")" rpm_root -i --nodeps --nosignature "$rpm_file"
check "rpm reports ${version}-${release}" test "$(rpm_root -q --qf '%{VERSION}-%{RELEASE}' nhiguard-agent)" = "${version}-${release}"
check "rpm -V: every file as packaged" rpm_root -V --nodeps nhiguard-agent
for dir in /var/lib/nhiguard /var/log/nhiguard /etc/nhiguard/pki; do
  check "%post made $dir (700 root:root)" test "$(mode_of "$dir")" = "700 root:root"
done
check "%post followed the preset (disable): not enabled" \
  test ! -e "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service"

# --- upgrade with an edited configuration
sed -i 's/^mode: policy$/mode: observe  # edited on this host by the rpm test/' "$root/etc/nhiguard/agent.yaml"
check "the edit is in place" grep -q 'edited on this host' "$root/etc/nhiguard/agent.yaml"
check "rpm -U $(basename "$rpm_next")" rpm_root -U --nodeps --nosignature "$rpm_next"
check "rpm reports ${version}-${next_release}" \
  test "$(rpm_root -q --qf '%{VERSION}-%{RELEASE}' nhiguard-agent)" = "${version}-${next_release}"
check "the edited agent.yaml survived the upgrade" grep -q '^mode: observe  # edited on this host' "$root/etc/nhiguard/agent.yaml"
check "no agent.yaml.rpmnew (the packaged default did not change)" test ! -e "$root/etc/nhiguard/agent.yaml.rpmnew"
check "still not enabled after the upgrade" \
  test ! -e "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service"

# --- erase
touch "$root/var/lib/nhiguard/ledger.db"
check "rpm -e nhiguard-agent" rpm_root -e --nodeps nhiguard-agent
for gone in /usr/sbin/nhiguard-agent /usr/bin/nhiguardctl /usr/lib/systemd/system/nhiguard-agent.service \
            /etc/nhiguard/agent.yaml /usr/share/man/man8/nhiguard-agent.8.gz; do
  check "erased: $gone" test ! -e "$root$gone"
done
check "the edited configuration saved as agent.yaml.rpmsave" grep -q 'edited on this host' "$root/etc/nhiguard/agent.yaml.rpmsave"
check "kept: /var/lib/nhiguard with the ledger" test -f "$root/var/lib/nhiguard/ledger.db"
check "rpm no longer knows nhiguard-agent" sh -c "! rpm --root '$root' --dbpath /var/lib/rpm -q nhiguard-agent"

# --- where the preset says "enable", %post enables it (and %preun disables it on erase)
echo 'enable nhiguard-agent.service' > "$root/etc/systemd/system-preset/00-nhiguard-test.preset"
check "rpm -i again, preset enable" rpm_root -i --nodeps --nosignature "$rpm_file"
check "%post followed the preset (enable): multi-user.target.wants/nhiguard-agent.service" \
  test -L "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service"
check "rpm -e again" rpm_root -e --nodeps nhiguard-agent
check "%preun disabled it" test ! -e "$root/etc/systemd/system/multi-user.target.wants/nhiguard-agent.service"

echo "failures: $failures"
[ "$failures" -eq 0 ]
