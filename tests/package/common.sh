# Shared by the package tests (sourced). Expects $work (the test's scratch directory) and counts
# failures in $failures.

# check DESCRIPTION COMMAND...: runs COMMAND; prints ok/FAIL, and on failure what it printed.
check() {
  local what=$1; shift
  if "$@" > "$work/check.out" 2>&1; then
    echo "ok   - $what"
  else
    echo "FAIL - $what"; sed 's/^/       /' "$work/check.out" | head -30; failures=$((failures + 1))
  fi
}

# ensure_debian_base TARBALL: a Debian 12 minbase root with systemd, made by debootstrap from
# $NHIGUARD_DEBIAN_MIRROR (default deb.debian.org) when TARBALL is missing or a week old.
ensure_debian_base() {
  local tarball=$1 mirror=${NHIGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  if [ -f "$tarball" ] && [ -z "$(find "$tarball" -mtime +7)" ]; then return 0; fi
  echo "# debootstrap bookworm (minbase + systemd) from $mirror"
  mkdir -p "$(dirname "$tarball")"
  debootstrap --variant=minbase --include=systemd bookworm "$work/base" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; return 1; }
  tar -C "$work/base" -cf "$tarball.tmp.$$" . && mv "$tarball.tmp.$$" "$tarball"
  rm -rf --one-file-system "$work/base"
}

# package_dependencies DEB...: the package names of the Depends fields, one per line.
package_dependencies() {
  local deb
  for deb in "$@"; do dpkg-deb -f "$deb" Depends; echo ,; done |
    tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/[[:space:]]//g' | grep -v '^$' | sort -u
}
