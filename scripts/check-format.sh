#!/usr/bin/env bash
# Fails, naming each file, when a C/C++ source under the tree is not as clang-format-19 would write it
# (.clang-format at the top for C++, bpf/.clang-format for the kernel-style BPF programs).
# Usage: check-format.sh [TREE]   (default: this checkout). Fix: clang-format-19 -i FILE...
set -euo pipefail
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
formatter=${CLANG_FORMAT:-clang-format-19}
if ! command -v "$formatter" > /dev/null; then
  echo "check-format: $formatter not found (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
cd "$tree"
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h' '*.cpp' '*.cc' |
    grep -v -e '^bpf/vmlinux' -e '^build' || true)
else
  mapfile -t files < <(find . -path ./build -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \
    -o -name '*.cc' \) -print | grep -v -e '/vmlinux' | sed 's|^\./||' | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "check-format: no C/C++ file under $tree" >&2; exit 2; }
unformatted=()
for file in "${files[@]}"; do
  [ -f "$file" ] || continue
  "$formatter" --dry-run -Werror "$file" > /dev/null 2>&1 || unformatted+=("$file")
done
if [ "${#unformatted[@]}" -gt 0 ]; then
  echo "check-format: ${#unformatted[@]} of ${#files[@]} files are not formatted:" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  echo "fix with: $formatter -i ${unformatted[*]}" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
