#!/bin/bash
# The collector and nhiguardctl run without libbpf and libelf: they link nhiguard_common, the
# protocol and (nhiguardctl) the agent's modules that do not touch BPF, never the daemon. The agent
# must show both libraries, which proves the check sees them when they are there.
#   no_libbpf_test.sh AGENT COLLECTOR NHIGUARDCTL
set -euo pipefail
agent=$1
shift

# ldd lists what a binary loads, directly or through another library (libelf comes with libbpf).
# An ldd that fails, or lists no libc, ends the test: an empty list must never pass.
loads() {
  local libs
  libs=$(ldd "$1" | awk '{print $1}')
  if ! grep -q '^libc\.so' <<<"$libs"; then
    echo "FAIL: ldd $1 lists no libc: cannot tell what it loads" >&2
    exit 1
  fi
  echo "$libs"
}

agent_libs=$(loads "$agent")
for lib in libbpf libelf; do
  if ! grep -q "^$lib\.so" <<<"$agent_libs"; then
    echo "FAIL: $agent does not load $lib: the check would not see it in the others" >&2
    exit 1
  fi
done

status=0
for binary in "$@"; do
  libs=$(loads "$binary")
  if found=$(grep -E '^lib(bpf|elf)\.so' <<<"$libs"); then
    echo "FAIL: $binary loads" $found >&2
    status=1
  else
    echo "ok: $binary loads neither libbpf nor libelf"
  fi
done
exit $status
