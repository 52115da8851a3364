import type { HostPort } from './parsers.js';
import type { RegistryCredential } from './credentials.js';
import type { AccessRule, ClientAuthMode, ClientToken } from '../client-auth/client-auth-config.js';
import type { CustomDomain } from './custom-domains.js';
import type { Secret } from './secret.js';
import type { BlobStoreConfig, CacheIndexConfig } from './shared-stores.js';

export type { BlobStoreConfig, CacheIndexConfig, CustomDomain, HostPort, RegistryCredential };

/** A manifest caching tier: tags whose start matches `pattern` are kept for `ttlMs`. */
export interface ManifestTier {
  readonly pattern: RegExp;
  readonly ttlMs: number;
}

/** The validated, frozen configuration every part of Layover receives. */
export interface LayoverConfig {
  readonly configFile: string | null;
  readonly dataDir: string;
  readonly caDir: string;
  readonly listen: {
    readonly https: HostPort;
    /** null: switched off. */
    readonly http: HostPort | null;
    readonly dns: HostPort | null;
    /** HTTPS_PROXY mode: CONNECT (and plain-HTTP /ca.crt, /setup/*); null: switched off. */
    readonly proxy: HostPort | null;
  };
  /** CONNECT to a host Layover does not intercept: tunnelled byte for byte, or refused. */
  readonly connectPolicy: 'tunnel' | 'deny';
  /** Without client authentication, the clients tunnels are for (with it, their credentials decide). */
  readonly connectAllowNetworks: readonly string[];
  /** Names of the operator's own mapped to an upstream registry and prefix. */
  readonly customDomains: readonly CustomDomain[];
  /** Offer h2 by ALPN on the TLS listener (off by default: blobs are faster over HTTP/1.1). */
  readonly http2: boolean;
  /** The addresses DNS answers give for intercepted names. */
  readonly advertise: readonly string[];
  /** Real resolvers: for forwarding DNS and for reaching upstream registries. */
  readonly upstreamDns: readonly HostPort[];
  /** Extra CA certificates (a PEM file path) trusted for upstream TLS. */
  readonly upstreamCa: string | null;
  readonly verifyUpstreamTls: boolean;
  readonly logLevel: string;
  /** auto: pretty on a terminal, JSON otherwise. */
  readonly logFormat: 'auto' | 'json' | 'pretty';
  /** Operations: /metrics, the status page, the admin API (src/metrics/, src/status/, src/admin/). */
  readonly admin: {
    /** A listener of their own; null: they are served by the HTTP listener. */
    readonly listen: HostPort | null;
    /** Sources the admin API answers at all. */
    readonly allowNetworks: readonly string[];
    /** Absolute path of the admin token, created when missing. */
    readonly tokenFile: string;
    /** With client authentication on, members of this group are admins. */
    readonly group: string;
    /** ADMIN_HOSTNAMES: names besides Layover's own a browser may reach them under; `*`: any. */
    readonly hostnames: readonly string[];
    /** Serve /metrics. */
    readonly metrics: boolean;
  };
  /** Docker Hub's pull budget: below this many remaining pulls, warn and serve cached tags first. */
  readonly dockerHubBudgetLow: number;
  /** Images kept warm (src/prefetch/). */
  readonly prefetch: {
    readonly images: readonly string[];
    readonly intervalMs: number;
    readonly referrers: boolean;
  };
  /** Every intercepted name: the configured registries, Docker Hub's names and docker.proxy. */
  readonly registries: readonly string[];
  /** REGISTRIES as configured (`host`, `*.domain`, `host:port`): which ports each registry may be reached at. */
  readonly registryPatterns: readonly string[];
  /** Ports other than 443 that registries were configured with (`registry.example:5000`): a TLS listener each. */
  readonly registryPorts: readonly number[];
  readonly credentials: readonly RegistryCredential[];
  readonly cacheMaxSize: number;
  /** Where verified blobs live (shared mode: an S3-compatible bucket). */
  readonly blobStore: BlobStoreConfig;
  /** presigned: a hit in object storage answers with a short-lived presigned URL instead of the bytes. */
  readonly blobRedirect: 'off' | 'presigned';
  /** Where the cache index, tag and access records live (shared mode: Redis or Postgres). */
  readonly cacheIndex: CacheIndexConfig;
  /** Shared index: the address peers dial to follow this replica's fills (its HTTPS listener); null: off, or no shared index. */
  readonly peerAddress: HostPort | null;
  readonly manifestCache: {
    readonly enabled: boolean;
    /** Tiers in order of precedence; a tag matching none gets `defaultTtlMs`. */
    readonly tiers: readonly ManifestTier[];
    readonly defaultTtlMs: number;
  };
  readonly allowPush: boolean;
  /** Who may use Layover (src/client-auth/): `none` lets every client in. */
  readonly clientAuth: {
    readonly mode: ClientAuthMode;
    /** Absolute path; set when mode is htpasswd. */
    readonly htpasswdFile: string | null;
    readonly tokens: readonly ClientToken[];
    /** Group name -> users, for every authenticator. */
    readonly groups: Readonly<Record<string, readonly string[]>>;
    /** null: the default (every authenticated user may pull, nobody may push). */
    readonly accessRules: readonly AccessRule[] | null;
    /** The challenge clients get: Basic credentials on every request, or Layover's own token service at https://docker.proxy/token. */
    readonly challenge: 'basic' | 'bearer';
    /** Lifetime of the tokens Layover's token service issues. */
    readonly tokenTtlMs: number;
    /** Absolute path of the key the token service signs with. */
    readonly tokenKeyFile: string;
    /** How long a successful check of a client's credentials is remembered (LDAP binds, bcrypt). */
    readonly cacheTtlMs: number;
    /** Set when mode is jwt. */
    readonly jwt: {
      readonly issuer: string;
      /** null: discovered from the issuer's /.well-known/openid-configuration. */
      readonly jwksUrl: string | null;
      readonly audience: string;
      readonly userClaim: string;
      readonly groupsClaim: string;
    } | null;
    /** Set when mode is ldap. Either `userDn` (bind directly) or `searchBase` (search, then bind). */
    readonly ldap: {
      readonly url: string;
      readonly userDn: string | null;
      readonly searchBase: string | null;
      readonly searchFilter: string;
      /** The account that searches; null: anonymous search. */
      readonly bindDn: string | null;
      readonly bindPassword: Secret | null;
      /** null: no group look-up. */
      readonly groupBase: string | null;
      readonly groupFilter: string;
      readonly startTls: boolean;
      /** Absolute path of a PEM file of CA certificates for ldaps/StartTLS. */
      readonly ca: string | null;
    } | null;
  };
  /** The authorisation-aware cache: checks before cached content of repositories that need credentials is served. */
  readonly accessChecks: {
    /** How long an upstream check with a client's own credentials is remembered, per client and repository. */
    readonly ttlMs: number;
    /** How long Layover's record of whether a repository is served anonymously holds. */
    readonly anonymousTtlMs: number;
    /** Registries (patterns) whose cached content is served when the upstream cannot be asked; all others fail closed. */
    readonly failOpen: readonly string[];
  };
  /** Blob redirects from registries: how they reach clients, and where storage fetches may connect. */
  readonly redirects: {
    /** rewrite: a signed docker.proxy URL; follow: Layover follows the chain and the client gets a 200. */
    readonly mode: 'rewrite' | 'follow';
    /** Non-public networks storage fetches may still reach (CIDRs), besides the registry's own addresses. */
    readonly allowNetworks: readonly string[];
    /** Absolute path of the key docker.proxy URLs are signed with. */
    readonly keyFile: string;
  };
  /** Bounds on the TCP listeners (443, 80, 3128, registry ports); 0: no cap. */
  readonly connections: {
    readonly maxPerListener: number;
    readonly maxPerClient: number;
    /** A TLS client must complete its handshake (ClientHello included) within this. */
    readonly tlsHandshakeMs: number;
  };
  /** The DNS server's defences as a resolver reachable by strangers. */
  readonly dnsPolicy: {
    /** Clients (CIDRs) whose questions for other names are forwarded; others get REFUSED. */
    readonly allowRecursion: readonly string[];
    /** Identical responses per second per client prefix; 0: no limit. */
    readonly rateLimit: number;
    /** Clients (CIDRs) whose responses are never rate-limited. */
    readonly rateLimitExempt: readonly string[];
    /** Every slip-th limited UDP response is sent truncated; 0: none. */
    readonly rateLimitSlip: number;
    /** A TCP connection must deliver each complete query within this. */
    readonly tcpQueryMs: number;
    readonly tcpMaxPerClient: number;
  };
  /** Threads answering intercepted names beside the main thread (DNS_UDP_WORKERS). */
  readonly dnsUdpWorkers: number | 'auto';
  /** nginx meanings: connect = to upstream; read/send = between two reads/writes. */
  readonly timeouts: {
    readonly proxyConnectMs: number;
    readonly proxyReadMs: number;
    readonly proxySendMs: number;
    readonly sendMs: number;
    readonly clientBodyMs: number;
    readonly clientHeaderMs: number;
    readonly keepaliveMs: number;
    /** How long a stop (SIGTERM) waits for responses in flight before exiting anyway. */
    readonly shutdownGraceMs: number;
    /** After SIGTERM: how long /readyz says 503 while new connections are still accepted; at most shutdownGraceMs. */
    readonly shutdownDrainMs: number;
  };
}
