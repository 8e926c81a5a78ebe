#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs the agent with the default configuration
# and policy, protecting this host. Credential accesses are written as JSON lines to
# /var/lib/nhiguard/events.jsonl and mirrored to stdout. Stop with Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NHIGUARD_BUILD_DIR:-$top/build}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"
mkdir -p /etc/nhiguard
config=/etc/nhiguard/agent.yaml
if [ ! -f "$config" ]; then
  install -m 0600 "$top/packaging/agent.yaml" "$config"
fi
exec "$build/agent/nhiguard-agent" --config "$config" --events-stdout
