#!/usr/bin/env bash
# package: lintian on every .deb and rpmlint on every .rpm of the build, with no error and no
# warning beyond those justified in README ("Packaging: lint"; the same list is below); the .rpm
# carries the same payload as the .deb (paths and permission bits), apart from Debian's changelog.
# Usage: lint_test.sh BUILD_DIR SOURCE_DIR VERSION RELEASE
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
build=$(realpath "$1")
src=$(realpath "$2")
version=$3
release=$4
packages=$build/packages
work=$(mktemp -d /tmp/nhiguard-pkglint.XXXXXX)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$work"' EXIT
failures=0

# Justified in README; anything else fails the test.
allowed_lintian=(
  initial-upload-closes-no-bugs   # the changelog closes no Debian bug: the package is not in Debian's archive
)
allowed_rpmlint=(
  only-non-binary-in-usr-lib      # the systemd unit: /usr/lib/systemd/system is where units belong
  no-url-tag                      # the project has no public home page yet
  invalid-license                 # no license is published yet (README, "Packaging")
  no-manual-page-for-binary       # rpmlint 2.4.0 bug: it records man sections, not page names; both pages ship
  dangerous-command-in-%post      # collector: hard-links a flat PKI into collector/ on upgrade (README)
)


no_output() {  # no_output COMMAND...: succeeds when COMMAND prints nothing; shows what it printed
  local out
  out=$("$@")
  [ -z "$out" ] || { echo "$out"; return 1; }
}

# Prints the tags of lint lines of the given severities that are not in the allowed list.
unexpected_tags() {  # unexpected_tags REPORT SEVERITY_REGEX ALLOWED...
  local report=$1 severity=$2; shift 2
  local tag
  grep -E "$severity" "$report" | while read -r line; do
    tag=$(sed -E 's/^[EWI]: [^ ]+( \([^)]*\))?: ([^ ]+).*/\2/; t; s/^[^ ]+: ([EW]): ([^ ]+).*/\2/' <<< "$line")
    printf '%s\n' "$@" | grep -qxF "$tag" || echo "$line"
  done
}

debs=("$packages"/nhiguard-*_"${version}-${release}"_*.deb)
rpms=("$packages"/nhiguard-*-"${version}-${release}".*.rpm)
check "the build made .deb files" test -f "${debs[0]}"
check "the build made .rpm files" test -f "${rpms[0]}"

for deb in "${debs[@]}"; do
  name=$(basename "$deb")
  lintian --no-cfg --display-level '>=warning' --tag-display-limit 0 "$deb" > "$work/$name.lintian" 2>&1 || true
  echo "# lintian $name"; sed 's/^/#   /' "$work/$name.lintian"
  check "lintian $name: no error" sh -c "! grep -E '^E: ' '$work/$name.lintian'"
  check "lintian $name: no warning beyond the justified ones" \
    no_output unexpected_tags "$work/$name.lintian" '^W: ' "${allowed_lintian[@]}"
done

# Packages are signed when they are published, with the fleet's key; rpmlint rightly reports an
# unsigned one (no-signature, an error). The test signs a copy with a throwaway key, as the release
# step does with the real one, and lints what would be published.
export GNUPGHOME=$work/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "nhiguard package test <pkgtest@nhiguard.invalid>" rsa2048 sign never
# rpm (and rpmlint through it) verify signatures against an rpm database: a private one, in which
# only the throwaway key is trusted, through a HOME of the test's own (~/.rpmmacros).
export HOME=$work/home
mkdir -p "$HOME"
echo "%_dbpath $work/rpmdb" > "$HOME/.rpmmacros"
gpg --batch --armor --export pkgtest@nhiguard.invalid > "$work/pkgtest.asc"
rpm --initdb && rpm --import "$work/pkgtest.asc"
for rpm in "${rpms[@]}"; do
  name=$(basename "$rpm")
  cp "$rpm" "$work/$name"
  check "rpmsign $name with a throwaway key" \
    rpmsign --define "__gpg $(command -v gpg)" --define "_gpg_name pkgtest@nhiguard.invalid" --define "_gpg_path $GNUPGHOME" \
            --addsign "$work/$name" < /dev/null
  check "rpm -K $name: signature verified with the throwaway key" sh -c "rpm -K '$work/$name' | grep -q 'signatures OK'"
  rpmlint --config "$src/packaging/rpmlint.toml" "$work/$name" > "$work/$name.rpmlint" 2>&1 || true
  echo "# rpmlint $name"; sed 's/^/#   /' "$work/$name.rpmlint"
  check "rpmlint $name: 0 errors" grep -Eq '[0-9]+ packages and [0-9]+ specfiles checked; 0 errors' "$work/$name.rpmlint"
  check "rpmlint $name: no warning beyond the justified ones" \
    no_output unexpected_tags "$work/$name.rpmlint" ': W: ' "${allowed_rpmlint[@]}"
done

# The payload of a package as "permissions path" lines, directories left out (each format lists
# different parent directories), and changelog.Debian.gz, Debian metadata (RPM keeps its changelog
# in the header).
normalise() { grep -v '/changelog.Debian.gz$' | sort; }
for deb in "${debs[@]}"; do
  package=$(dpkg-deb -f "$deb" Package)
  rpm=$(ls "$packages/$package-${version}-${release}".*.rpm 2>/dev/null | head -1)
  [ -n "$rpm" ] || { echo "FAIL - no .rpm for $package"; failures=$((failures + 1)); continue; }
  dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $6 }' | normalise > "$work/$package.deb-payload"
  rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null | awk '$1 !~ /^d/' | normalise > "$work/$package.rpm-payload"
  echo "# payload of $package:"; sed 's/^/#   /' "$work/$package.deb-payload"
  check "$package: rpm -qpl lists the payload of the .deb" diff "$work/$package.deb-payload" "$work/$package.rpm-payload"
  rpm -qp --configfiles "$rpm" 2>/dev/null | sort > "$work/$package.rpm-config"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | sort > "$work/$package.deb-conffiles"
  check "$package: %config files of the .rpm are the conffiles of the .deb" \
    diff "$work/$package.deb-conffiles" "$work/$package.rpm-config"
  rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null | awk '$1 ~ /c/ && $1 !~ /n/' > "$work/$package.replaceable"
  check "$package: every %config is noreplace" test ! -s "$work/$package.replaceable"
  # Every shared library its programs link (DT_NEEDED) is required by soname.
  rpm -qp --requires "$rpm" 2>/dev/null > "$work/$package.requires"
  mkdir -p "$work/$package.payload"
  dpkg-deb -x "$deb" "$work/$package.payload"
  find "$work/$package.payload/usr" -path '*bin/*' -type f -perm -u+x -print0 |
    xargs -0 readelf -d | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | sort -u > "$work/$package.needed"
  check "$package: the .rpm requires each of the $(wc -l < "$work/$package.needed") libraries its programs link" \
    sh -c "test -s '$work/$package.needed' && while read -r so; do
             grep -qxF \"\$so()(64bit)\" '$work/$package.requires' || { echo \"missing: \$so\"; exit 1; }
           done < '$work/$package.needed'"
done

echo "failures: $failures"
[ "$failures" -eq 0 ]
