#!/usr/bin/env bash
# Installs everything nhiguard needs to build, run and test, from Debian 12's repositories only.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get needs it)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates openssl \
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev \
  libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev \
  libssl-dev libsqlite3-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc \
  libgtest-dev libgmock-dev \
  iproute2 procps util-linux jq socat python3 sqlite3 \
  file rpm debootstrap lintian rpmlint systemd-container \
  qemu-system-x86 busybox-static cpio xz-utils binutils \
  clang-format-19
