    # The unit reads its PKI from /etc/nhiguard/pki/collector/ (`nhiguardctl certs init` makes it).
    # A host whose PKI predates role directories has the files flat in /etc/nhiguard/pki: the same
    # files are hard-linked into collector/ (nothing is copied or re-issued), so the upgraded unit
    # starts on them; `nhiguardctl certs init /etc/nhiguard/pki` later moves the rest of that layout.
    pki=/etc/nhiguard/pki
    if [ -f "$pki/collector-key.pem" ] && [ ! -e "$pki/collector" ]; then
      mkdir -m 0700 "$pki/collector" &&
        ln "$pki/ca.pem" "$pki/collector.pem" "$pki/collector-key.pem" "$pki/collector/" &&
        echo "nhiguard-collector: linked the flat PKI's ca.pem, collector.pem, collector-key.pem into $pki/collector/" ||
        echo "nhiguard-collector: could not link the PKI into $pki/collector/; run: nhiguardctl certs init $pki" >&2
    fi
