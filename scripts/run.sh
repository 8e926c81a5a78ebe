#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs the collector (SQLite) and the agent with the
# default configuration and policy, protecting this host and reporting to that collector over mTLS.
#   - PKI: /etc/nhiguard/pki (the CA in ca/, the collector's, agent's and operator's pairs each in
#     its own directory), made by `nhiguardctl certs init` when missing; existing certificates are
#     kept (a flat PKI of an older version is moved into those directories). The collector is given
#     collector/ only; the agent finds agent/ from collector.pki: /etc/nhiguard/pki.
#   - Collector: nhiguard-collector on $NHIGUARD_COLLECTOR_LISTEN (default 127.0.0.1:7443), store
#     /var/lib/nhiguard-collector/collector.db, log /var/lib/nhiguard-collector/collector.log.
#   - Agent: /etc/nhiguard/agent.yaml (installed from packaging/agent.yaml with collector.address set
#     when missing); credential accesses go to /var/lib/nhiguard/events.jsonl and stdout.
# Query the collector meanwhile with: nhiguardctl --collector 127.0.0.1:7443 agents | actions | incidents
# Stop with Ctrl-C (both stop).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NHIGUARD_BUILD_DIR:-$top/build}
listen=${NHIGUARD_COLLECTOR_LISTEN:-127.0.0.1:7443}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh"

mkdir -p /etc/nhiguard
pki=/etc/nhiguard/pki
"$build/agent/nhiguardctl" certs init "$pki" > /dev/null

collector_dir=/var/lib/nhiguard-collector
install -d -m 0700 "$collector_dir"
rm -f "$collector_dir/port"
"$build/collector/nhiguard-collector" --listen "$listen" --db "sqlite:$collector_dir/collector.db" --pki "$pki/collector" \
  --port-file "$collector_dir/port" >> "$collector_dir/collector.log" 2>&1 &
collector_pid=$!
trap 'kill "$collector_pid" 2> /dev/null || true; wait "$collector_pid" 2> /dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$collector_dir/port" ] && break; sleep 0.1; done
if [ ! -s "$collector_dir/port" ]; then
  echo "run.sh: the collector did not start; its log:" >&2
  tail -n 20 "$collector_dir/collector.log" >&2
  exit 1
fi
echo "run.sh: nhiguard-collector on $listen (log $collector_dir/collector.log)"

config=/etc/nhiguard/agent.yaml
# A missing config, or the unchanged default an earlier run installed, becomes the default pointed
# at this collector; a config someone edited is left alone.
if [ ! -f "$config" ] || cmp -s "$config" "$top/packaging/agent.yaml"; then
  sed "s|^  address: \"\"|  address: \"$listen\"|" "$top/packaging/agent.yaml" > "$config.tmp"
  chmod 0600 "$config.tmp" && mv "$config.tmp" "$config"
fi
# The shipped policy (alert mode, canaries): policy_dir of packaging/agent.yaml. A file the operator
# already has is kept as it is.
mkdir -p -m 0700 /etc/nhiguard/policy.d
for policy in "$top"/packaging/policy.d/*.yaml; do
  [ -f "/etc/nhiguard/policy.d/$(basename "$policy")" ] || install -m 0600 "$policy" /etc/nhiguard/policy.d/
done
"$build/agent/nhiguard-agent" --config "$config" --events-stdout
