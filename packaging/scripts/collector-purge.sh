    # Purge: the collector's database and state (a dynamic user's state lives under /var/lib/private).
    rm -rf /var/lib/nhiguard-collector /var/lib/private/nhiguard-collector
    rmdir /etc/nhiguard 2>/dev/null || true
