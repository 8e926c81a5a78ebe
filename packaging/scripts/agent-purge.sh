    # Purge: the agent's data (ledger, outbox, evidence, host secret, event logs), the canaries it
    # planted, and its pins. Removing
    # the pin directory unpins every program, link and map: the programs detach and all enforcement
    # still in the kernel ends now. Only the packaged default locations are touched; a state_dir or
    # bpf.pin_dir moved in agent.yaml is the administrator's to remove.
    # Canary files the unit planted (listed as it planted them; a path that is no longer a regular
    # file is left alone).
    if [ -f /var/lib/nhiguard/planted-canaries ]; then
      while IFS= read -r canary; do
        if [ -f "$canary" ] && [ ! -L "$canary" ]; then rm -f "$canary"; fi
      done < /var/lib/nhiguard/planted-canaries
    fi
    rm -rf /var/lib/nhiguard /var/log/nhiguard /run/nhiguard
    if [ -z "${DPKG_ROOT:-}" ] && [ -d /sys/fs/bpf/nhiguard ] &&
       [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" = bpf_fs ]; then
      rm -rf /sys/fs/bpf/nhiguard
      echo "nhiguard-agent: removed the pinned kernel state under /sys/fs/bpf/nhiguard"
    fi
    # /etc/nhiguard/pki was made by postinst; certificates an operator put there are kept.
    rmdir /etc/nhiguard/pki 2>/dev/null ||
      { [ -d /etc/nhiguard/pki ] && echo "nhiguard-agent: kept /etc/nhiguard/pki (it holds files)"; } || true
    rmdir /etc/nhiguard 2>/dev/null || true
