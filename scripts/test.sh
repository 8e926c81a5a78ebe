#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test tier (unit, bpf, e2e).
# bpf and e2e need root and a kernel with BTF; they do not skip on such a machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NHIGUARD_BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
cd "$build"
status=0
for label in unit bpf e2e; do
  echo "=== ctest -L $label"
  ctest -L "^${label}\$" --output-on-failure --timeout 600 || status=1
done
echo "=== all tiers"
ctest --timeout 600 -N | tail -1
exit $status
