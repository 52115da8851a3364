export const USAGE = `Usage: layover [command] [options]

Commands:
  serve              run the proxy: DNS, HTTPS (443) and HTTP (80) listeners (default)
  ca                 print the CA certificate (created on first use)
  coredns [--k8s]    print the CoreDNS stanza, or with --k8s the kube-system ConfigMap
  hosts              print /etc/hosts lines for the intercepted names
  config             print the effective configuration (credentials redacted)
  containerd-config [--server URL] [--ca FILE|none] [--dir DIR]
                     containerd hosts.toml files using Layover as a mirror (?ns=)
  registries-conf [--server HOST]
                     registries.conf mirror entries for podman, CRI-O, skopeo
  cache stats|ls|verify      the blob cache: totals, entries (most recent first), re-hash all
  cache prune [--max-size SIZE]  evict least recently used blobs down to SIZE (CACHE_MAX_SIZE)
  help               print this text

Options (each also an environment variable; see README):
  --config FILE              YAML or JSON config file          LAYOVER_CONFIG
  --data-dir DIR             cache, index and CA (./data)      LAYOVER_DATA_DIR
  --ca-dir DIR               CA directory (DATA_DIR/ca)        LAYOVER_CA_DIR
  --https ADDR:PORT          TLS listener (0.0.0.0:443)        LAYOVER_HTTPS
  --http ADDR:PORT|off       plain listener (0.0.0.0:80)       LAYOVER_HTTP
  --dns ADDR:PORT|off        DNS listener (0.0.0.0:53)         LAYOVER_DNS
  --advertise IP[,IP...]     addresses DNS gives for intercepted names
  --upstream-dns IP[:PORT][,...]  real resolvers (default: /etc/resolv.conf)
  --upstream-ca FILE         extra CAs trusted for upstream TLS
  --registries "H1 H2"       names to intercept                REGISTRIES
  --http2                    offer h2 on the TLS listener      LAYOVER_HTTP2
  --log-level LEVEL          fatal..trace, silent (info)       LAYOVER_LOG_LEVEL
  and, as in the nginx-based registry proxies: --cache-max-size, --enable-manifest-cache,
  --manifest-cache-{primary,secondary}-{regex,time}, --manifest-cache-default-time,
  --allow-push, --verify-ssl and the timeouts (--proxy-read-timeout ...).
  Credentials only by AUTH_REGISTRIES or the config file, never as flags.
`;
