  # A freeze has no kernel-side expiry: only a running agent thaws it. Every active freeze is rolled
  # back while the agent still answers, so that removing the package never leaves a service frozen
  # for good. Egress blocks and credential denies are left to their TTL, which the kernel enforces
  # without an agent (README, "Packaging: removal").
  if command -v nhiguardctl >/dev/null && [ -S /run/nhiguard/agent.sock ]; then
    frozen=$(nhiguardctl --timeout 10s actions --state active --limit 10000 2>/dev/null |
             awk '$2 == "freeze" { print $1 }') || frozen=""
    for handle in $frozen; do
      if nhiguardctl --timeout 10s rollback "$handle" >/dev/null 2>&1; then
        echo "nhiguard-agent: rolled back freeze $handle (the agent is being removed)"
      else
        echo "nhiguard-agent: could not roll back freeze $handle; thaw its cgroup by hand" >&2
      fi
    done
  elif [ -f /var/lib/nhiguard/ledger.db ]; then
    echo "nhiguard-agent: the agent is not running; a cgroup it froze stays frozen until thawed by hand" \
         "(echo 0 > <cgroup>/cgroup.freeze; the ledger is /var/lib/nhiguard/ledger.db)" >&2
  fi
