#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test tier (unit, bpf, e2e, package,
# kernel). bpf and e2e need root and a kernel with BTF; package needs root and Debian's mirror
# (debootstrap); kernel needs Debian's mirror (the cloud kernel packages) and qemu-system-x86_64.
# None of them skips on such a machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NHIGUARD_BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
cd "$build"
status=0
passed=0
failed=0
skipped=0
for label in unit bpf e2e package kernel; do
  echo "=== ctest -L $label"
  log=$(mktemp)
  # The kernel tier's output is its guests' gtest summaries (per kernel version): always shown.
  verbose=(); [ "$label" = kernel ] && verbose=(--verbose)
  ctest -L "^${label}\$" --output-on-failure "${verbose[@]}" --timeout 600 2>&1 | tee "$log" || status=1
  summary=$(grep -E '^[0-9]+% tests passed' "$log" || echo "0% tests passed, 0 tests failed out of 0")
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<< "$summary")
  fails=$(sed -E 's/.*, ([0-9]+) tests failed.*/\1/' <<< "$summary")
  skips=$(grep -c '\*\*\*Skipped' "$log" || true)
  echo "$label: $((total - fails - skips)) passed, $fails failed, $skips skipped"
  [ "$total" -gt 0 ] || { echo "$label: no test ran"; status=1; }
  passed=$((passed + total - fails - skips)); failed=$((failed + fails)); skipped=$((skipped + skips))
  rm -f "$log"
done
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $status
