#!/usr/bin/env bash
# The format check passes on this tree and fails, naming the file, on a tree with one unformatted
# C++ file or one BPF file written in the C++ style instead of the kernel's.
set -euo pipefail
source_dir=$1
check=$source_dir/scripts/check-format.sh
"$check" "$source_dir"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/agent" "$scratch/bpf"
cp "$source_dir/.clang-format" "$scratch/"
cp "$source_dir/bpf/.clang-format" "$scratch/bpf/"
printf 'int answer() {\n  return 42;\n}\n' > "$scratch/agent/good.cpp"
printf 'static int answer(void)\n{\n\treturn 42;\n}\n' > "$scratch/bpf/good.bpf.c"
"$check" "$scratch"

expect_failure_naming() {
  local file=$1 output
  if output=$("$check" "$scratch" 2>&1); then
    echo "format check passed a tree holding unformatted $file" >&2
    exit 1
  fi
  grep -q "  $file\$" <<< "$output" || { echo "format check did not name $file: $output" >&2; exit 1; }
}
printf 'int  answer( ) {return 42;}\n' > "$scratch/agent/bad.cpp"
expect_failure_naming agent/bad.cpp
rm "$scratch/agent/bad.cpp"
printf 'static int answer(void) {\n  return 42;\n}\n' > "$scratch/bpf/cxx_style.bpf.c"
expect_failure_naming bpf/cxx_style.bpf.c
echo "format check: passes this tree, fails and names unformatted files"
