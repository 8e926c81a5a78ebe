    # Directories the agent and the operator need; an existing one keeps the mode its owner gave it.
    for dir in /etc/nhiguard/pki /var/lib/nhiguard /var/log/nhiguard; do
      [ -d "$dir" ] || mkdir -p -m 0700 "$dir"
    done
