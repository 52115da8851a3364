import type { HostPort } from './parsers.js';
import type { RegistryCredential } from './credentials.js';
import type { AccessRule, ClientAuthMode, ClientToken } from '../client-auth/client-auth-config.js';

export type { HostPort, RegistryCredential };

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
  };
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
  /** Every intercepted name: the configured registries, Docker Hub's names and docker.proxy. */
  readonly registries: readonly string[];
  /** Ports other than 443 that registries were configured with (`registry.example:5000`): a TLS listener each. */
  readonly registryPorts: readonly number[];
  readonly credentials: readonly RegistryCredential[];
  readonly cacheMaxSize: number;
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
  };
  /** Blob redirects from registries: how they reach clients, and where storage fetches may connect. */
  readonly redirects: {
    /** rewrite: a signed docker.proxy URL; follow: Layover follows the chain and the client gets a 200. */
    readonly mode: 'rewrite' | 'follow';
    /** Non-public networks storage fetches may still reach (CIDRs), besides the registry's own addresses. */
    readonly allowNetworks: readonly string[];
  };
  /** nginx meanings: connect = to upstream; read/send = between two reads/writes. */
  readonly timeouts: {
    readonly proxyConnectMs: number;
    readonly proxyReadMs: number;
    readonly proxySendMs: number;
    readonly sendMs: number;
    readonly clientBodyMs: number;
    readonly clientHeaderMs: number;
    readonly keepaliveMs: number;
  };
}
