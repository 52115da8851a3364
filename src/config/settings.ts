import { isIP } from 'node:net';
import * as parse from './parsers.js';
import type { Parser } from './parsers.js';
import type { ClientAuthMode } from '../client-auth/client-auth-config.js';

/**
 * One setting: its config-file key (flags are the same name in kebab-case),
 * its environment name, the form it expects (for error messages), its parser
 * and its default. Defaults that depend on the machine are filled in by
 * load-config.ts (marked `undefined` here).
 */
export interface Setting<T> {
  /** null: only in the config file (no environment variable, no flag), as for lists of structured entries. */
  env: string | null;
  expected: string;
  parse: Parser<T>;
  default: T | undefined;
  /** No command-line flag: credentials do not belong in `ps` output. */
  noFlag?: boolean;
  /** Never echo the offending value in an error message. */
  secret?: boolean;
}

const setting = <T>(s: Setting<T>): Setting<T> => s;

/** CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses; a list (config file) or separated by commas or spaces. */
const networks: Parser<string[]> = (value) => {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : undefined;
  const valid = (item: unknown): boolean => {
    const match = typeof item === 'string' ? /^([^/]+)(?:\/(\d{1,3}))?$/.exec(item.trim()) : null;
    const family = match ? isIP(match[1]!) : 0;
    return family !== 0 && (match![2] === undefined || Number(match![2]) <= (family === 4 ? 32 : 128));
  };
  return items && items.every(valid) ? items.map((item: string) => item.trim()) : undefined;
};

/** `networks`, or `none` (also empty) for no network at all. */
const networksOrNone: Parser<string[]> = (value) => (typeof value === 'string' && value.trim().toLowerCase() === 'none' ? [] : networks(value));

/** A parser that accepts one of `choices`, case-insensitively. */
const oneOf =
  <T extends string>(...choices: T[]): Parser<T> =>
  (value) => {
    const s = typeof value === 'string' ? value.trim().toLowerCase() : undefined;
    return choices.find((c) => c === s);
  };

/** `auto`, or a whole number (a count). */
const countOrAuto: Parser<number | 'auto'> = (value) => oneOf('auto')(value) ?? parse.count(value);

/** An https URL, kept as given. */
const url: Parser<string> = (value) => {
  const s = typeof value === 'string' ? value.trim() : undefined;
  if (!s) return undefined;
  try {
    const u = new URL(s);
    // Keys fetched over plain HTTP (the issuer's discovery, its JWKS) are anyone's on the path: forged tokens would pass.
    return u.protocol === 'https:' ? s : undefined;
  } catch {
    return undefined;
  }
};

/** An ldap:// or ldaps:// URL. */
const ldapUrl: Parser<string> = (value) => {
  const s = typeof value === 'string' ? value.trim() : undefined;
  if (!s) return undefined;
  try {
    const u = new URL(s);
    return u.protocol === 'ldap:' || u.protocol === 'ldaps:' ? s : undefined;
  } catch {
    return undefined;
  }
};

/** A template that must contain `{user}`. */
const userTemplate: Parser<string> = (value) => {
  const s = typeof value === 'string' ? value.trim() : undefined;
  return s && s.includes('{user}') ? s : undefined;
};

/** A duration above zero: a deadline of 0 would close every connection at once. */
const positiveDuration: Parser<number> = (value) => {
  const ms = parse.duration(value);
  return ms !== undefined && ms > 0 ? ms : undefined;
};

/** Names to match a Host against (no ports), or `*` alone (a string, or a list of it in the config file). */
const hostnamesOrAny: Parser<string[]> = (value) => {
  if ((typeof value === 'string' && value.trim() === '*') || (Array.isArray(value) && value.length === 1 && value[0] === '*')) return ['*'];
  const patterns = parse.hostnamePatterns(value);
  return patterns?.every((pattern) => !pattern.includes(':')) ? patterns : undefined;
};

/** Non-empty strings: a list (config file) or separated by commas or spaces. */
const stringList: Parser<string[]> = (value) => {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : undefined;
  return items && items.every((item) => typeof item === 'string' && item.trim() !== '') ? items.map((item: string) => item.trim()) : undefined;
};

const LISTEN = 'ADDR:PORT such as 0.0.0.0:443';
const DURATION = 'a duration such as 60s, 10m, 1h or 60d';
const BOOLEAN = 'true or false';
const NETWORKS = 'networks such as 10.0.0.0/8 or fd00::/8 (or addresses) separated by commas';

// Meanings and defaults of the upper-case names follow the nginx-based registry
// proxies (their Dockerfile ENV block), so existing deployments keep working.
export const SETTINGS = {
  config: setting({ env: 'LAYOVER_CONFIG', expected: 'a path to a YAML or JSON file', parse: parse.string, default: undefined }),
  dataDir: setting({ env: 'LAYOVER_DATA_DIR', expected: 'a directory path', parse: parse.string, default: './data' }),
  caDir: setting({ env: 'LAYOVER_CA_DIR', expected: 'a directory path', parse: parse.string, default: undefined }),
  https: setting({ env: 'LAYOVER_HTTPS', expected: LISTEN, parse: parse.listen, default: { host: '0.0.0.0', port: 443 } }),
  http: setting({ env: 'LAYOVER_HTTP', expected: `${LISTEN}, or off`, parse: parse.optionalListen, default: { host: '0.0.0.0', port: 80 } }),
  dns: setting({ env: 'LAYOVER_DNS', expected: `${LISTEN}, or off`, parse: parse.optionalListen, default: { host: '0.0.0.0', port: 53 } }),
  http2: setting({ env: 'LAYOVER_HTTP2', expected: BOOLEAN, parse: parse.boolean, default: false }),
  advertise: setting({ env: 'LAYOVER_ADVERTISE', expected: 'IP addresses separated by commas', parse: parse.ipList, default: undefined }),
  upstreamDns: setting({ env: 'LAYOVER_UPSTREAM_DNS', expected: 'resolvers as IP[:PORT] separated by commas', parse: parse.resolverList, default: undefined }),
  upstreamCa: setting({ env: 'LAYOVER_UPSTREAM_CA', expected: 'a path to a PEM file', parse: parse.string, default: undefined }),
  verifySsl: setting({ env: 'VERIFY_SSL', expected: BOOLEAN, parse: parse.boolean, default: true }),
  logLevel: setting({ env: 'LAYOVER_LOG_LEVEL', expected: 'one of fatal, error, warn, info, debug, trace, silent', parse: parse.logLevel, default: 'info' }),

  registries: setting({
    env: 'REGISTRIES',
    expected: 'hostnames or *.domain wildcards, each with an optional :port, separated by spaces',
    parse: parse.hostnamePatterns,
    default: ['registry.k8s.io', 'k8s.gcr.io', 'gcr.io', 'quay.io', 'ghcr.io', 'public.ecr.aws', 'mcr.microsoft.com'],
  }),
  authRegistries: setting({ env: 'AUTH_REGISTRIES', expected: 'entries hostname:username:password', parse: parse.raw, default: [], noFlag: true, secret: true }),
  authRegistriesDelimiter: setting({ env: 'AUTH_REGISTRIES_DELIMITER', expected: 'a non-empty separator', parse: (v) => (typeof v === 'string' && v !== '' ? v : undefined), default: ' ' }),
  authRegistryDelimiter: setting({ env: 'AUTH_REGISTRY_DELIMITER', expected: 'a non-empty separator', parse: (v) => (typeof v === 'string' && v !== '' ? v : undefined), default: ':' }),

  // Shared mode (several replicas, one cache): see src/config/shared-stores.ts for the forms.
  blobStore: setting({ env: 'BLOB_STORE', expected: 'file, or s3://bucket/prefix[?endpoint=URL&region=R&pathStyle=true]', parse: parse.string, default: 'file' }),
  blobRedirect: setting<'off' | 'presigned'>({ env: 'BLOB_REDIRECT', expected: 'off or presigned', parse: oneOf('off', 'presigned'), default: 'off' }),
  cacheIndex: setting({ env: 'CACHE_INDEX', expected: 'sqlite, redis://host:port or postgres://user@host/db', parse: parse.string, default: 'sqlite', secret: true }),
  // Shared index only: where the other replicas reach this one to follow a download it started
  // (one upstream fetch per digest across the fleet). Default: this host's address, the HTTPS port.
  peerAddress: setting({ env: 'PEER_ADDRESS', expected: 'IP, IP:PORT or [IPv6]:PORT, or off', parse: parse.string, default: undefined }),
  cacheMaxSize: setting({ env: 'CACHE_MAX_SIZE', expected: 'a size such as 32g', parse: parse.size, default: 32 * 1024 ** 3 }),
  enableManifestCache: setting({ env: 'ENABLE_MANIFEST_CACHE', expected: BOOLEAN, parse: parse.boolean, default: false }),
  manifestCachePrimaryRegex: setting({ env: 'MANIFEST_CACHE_PRIMARY_REGEX', expected: 'a regular expression', parse: parse.regex, default: /(stable|nightly|production|test)/ }),
  manifestCachePrimaryTime: setting({ env: 'MANIFEST_CACHE_PRIMARY_TIME', expected: DURATION, parse: parse.duration, default: 10 * 60_000 }),
  manifestCacheSecondaryRegex: setting({ env: 'MANIFEST_CACHE_SECONDARY_REGEX', expected: 'a regular expression', parse: parse.regex, default: /(.*)(\d|\.)+(.*)(\d|\.)+(.*)(\d|\.)+/ }),
  manifestCacheSecondaryTime: setting({ env: 'MANIFEST_CACHE_SECONDARY_TIME', expected: DURATION, parse: parse.duration, default: 60 * 86_400_000 }),
  manifestCacheDefaultTime: setting({ env: 'MANIFEST_CACHE_DEFAULT_TIME', expected: DURATION, parse: parse.duration, default: 3_600_000 }),
  allowPush: setting({ env: 'ALLOW_PUSH', expected: BOOLEAN, parse: parse.boolean, default: false }),

  proxyConnectTimeout: setting({ env: 'PROXY_CONNECT_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  proxyReadTimeout: setting({ env: 'PROXY_READ_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  proxySendTimeout: setting({ env: 'PROXY_SEND_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  sendTimeout: setting({ env: 'SEND_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  clientBodyTimeout: setting({ env: 'CLIENT_BODY_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  clientHeaderTimeout: setting({ env: 'CLIENT_HEADER_TIMEOUT', expected: DURATION, parse: parse.duration, default: 60_000 }),
  keepaliveTimeout: setting({ env: 'KEEPALIVE_TIMEOUT', expected: DURATION, parse: parse.duration, default: 300_000 }),
  // Under Kubernetes' default 30 s termination grace, so Layover exits on its own terms first.
  shutdownGrace: setting({ env: 'SHUTDOWN_GRACE', expected: DURATION, parse: parse.duration, default: 25_000 }),
  // From SIGTERM on, /readyz answers 503 while everything is still served, so that load balancers and
  // kube-proxy take the replica out before it stops accepting connections. Bounded by SHUTDOWN_GRACE.
  shutdownDrain: setting({ env: 'SHUTDOWN_DRAIN', expected: DURATION, parse: parse.duration, default: 5_000 }),

  redirects: setting<'rewrite' | 'follow'>({ env: 'REDIRECTS', expected: 'rewrite or follow', parse: oneOf('rewrite', 'follow'), default: 'rewrite' }),
  // The key docker.proxy URLs are signed with; replicas of a shared index need the same file (default <data-dir>/redirect.key).
  redirectKeyFile: setting({ env: 'REDIRECT_KEY_FILE', expected: 'a file path', parse: parse.string, default: undefined }),
  redirectAllowNetworks: setting({
    env: 'REDIRECT_ALLOW_NETWORKS',
    expected: NETWORKS,
    parse: networks,
    default: [],
  }),

  // Connections on every TCP listener (443, 80, 3128, registry ports): bounded so that one client
  // cannot exhaust the file descriptors; idle connections are shed first when a cap is reached.
  maxConnections: setting({ env: 'MAX_CONNECTIONS', expected: 'a number of connections per listener (0: no cap)', parse: parse.count, default: 4096 }),
  maxConnectionsPerClient: setting({ env: 'MAX_CONNECTIONS_PER_CLIENT', expected: 'a number of connections per client address (0: no cap)', parse: parse.count, default: 256 }),
  tlsHandshakeTimeout: setting({ env: 'TLS_HANDSHAKE_TIMEOUT', expected: `${DURATION}, above 0`, parse: positiveDuration, default: 5_000 }),

  // The DNS server as a recursive resolver (src/dns/): only for these clients (BIND's allow-recursion);
  // the default is loopback, RFC 1918, RFC 6598, link-local, ULA and the host's own networks.
  dnsAllowRecursion: setting({ env: 'DNS_ALLOW_RECURSION', expected: NETWORKS, parse: networks, default: undefined }),
  // Response-rate limiting (RRL): identical answers per second to one client prefix (/24, /56).
  dnsRateLimit: setting({ env: 'DNS_RATE_LIMIT', expected: 'a number of responses per second (0: off)', parse: parse.count, default: 100 }),
  // Clients never rate-limited (BIND's exempt-clients): a cluster DNS or node-local cache asks for many
  // nodes from one address. Default: loopback and the host's own networks, which a forged source on the
  // internet cannot claim past the host's own routing.
  dnsRateLimitExempt: setting({ env: 'DNS_RATE_LIMIT_EXEMPT', expected: `${NETWORKS}, or none`, parse: networksOrNone, default: undefined }),
  // Every SLIP-th limited UDP answer goes out truncated (TC), so a real client retries over TCP; 0: drop all.
  dnsRateLimitSlip: setting({ env: 'DNS_RATE_LIMIT_SLIP', expected: 'a number (0: never answer a limited query)', parse: parse.count, default: 2 }),
  dnsTcpQueryTimeout: setting({ env: 'DNS_TCP_QUERY_TIMEOUT', expected: `${DURATION}, above 0`, parse: positiveDuration, default: 5_000 }),
  // Threads answering intercepted names beside the main thread, sharing the UDP port (SO_REUSEPORT);
  // each costs about 20 MB of RSS. auto: one per core beyond the first, at most 3. Off by default:
  // no gain was measured on two cores, and the README names what they do not bound yet.
  dnsUdpWorkers: setting<number | 'auto'>({ env: 'DNS_UDP_WORKERS', expected: 'auto or a number of threads (0: the main thread alone)', parse: countOrAuto, default: 0 }),
  dnsTcpMaxPerClient: setting({ env: 'DNS_TCP_MAX_PER_CLIENT', expected: 'a number of connections per client address (0: only the listener\'s cap of 256)', parse: parse.count, default: 16 }),

  // HTTPS_PROXY mode (src/connect-proxy/): CONNECT for intercepted names is served like port 443.
  proxy: setting({ env: 'LAYOVER_PROXY', expected: `${LISTEN}, or off`, parse: parse.optionalListen, default: { host: '0.0.0.0', port: 3128 } }),
  connectPolicy: setting<'tunnel' | 'deny'>({ env: 'CONNECT_POLICY', expected: 'tunnel or deny', parse: oneOf('tunnel', 'deny'), default: 'tunnel' }),
  // Without client authentication, the clients a tunnel is for (an open CONNECT proxy relays anyone's
  // traffic from Layover's address); by default those of DNS_ALLOW_RECURSION (local networks unless set).
  connectAllowNetworks: setting({ env: 'CONNECT_ALLOW_NETWORKS', expected: NETWORKS, parse: networks, default: undefined }),

  // Client authentication and access policy (src/client-auth/): off by default, as with the nginx-based proxies.
  clientAuth: setting<ClientAuthMode>({ env: 'CLIENT_AUTH', expected: 'none, htpasswd, tokens, jwt or ldap', parse: oneOf('none', 'htpasswd', 'tokens', 'jwt', 'ldap'), default: 'none' }),
  clientAuthChallenge: setting<'basic' | 'bearer'>({ env: 'CLIENT_AUTH_CHALLENGE', expected: 'basic or bearer', parse: oneOf('basic', 'bearer'), default: 'basic' }),
  clientTokenTtl: setting({ env: 'CLIENT_TOKEN_TTL', expected: DURATION, parse: parse.duration, default: 15 * 60_000 }),
  // The key Layover's client tokens are signed with; replicas of a shared index need the same file (default <data-dir>/client-token-key.pem).
  clientTokenKeyFile: setting({ env: 'CLIENT_TOKEN_KEY_FILE', expected: 'a file path', parse: parse.string, default: undefined }),
  clientAuthCacheTtl: setting({ env: 'CLIENT_AUTH_CACHE_TTL', expected: DURATION, parse: parse.duration, default: 60_000 }),
  htpasswdFile: setting({ env: 'HTPASSWD_FILE', expected: 'a path to an htpasswd file of bcrypt hashes (htpasswd -B)', parse: parse.string, default: undefined }),
  clientTokens: setting({ env: null, expected: 'a list of {user, token | tokenFile | tokenEnv, groups?}', parse: parse.raw, default: [], noFlag: true, secret: true }),
  clientGroups: setting({ env: null, expected: 'a mapping of group name to a list of users', parse: parse.raw, default: {}, noFlag: true }),
  accessRules: setting({ env: null, expected: 'a list of {users?, groups?, registries?, repositories?, actions}', parse: parse.raw, default: undefined, noFlag: true }),
  jwtIssuer: setting({ env: 'JWT_ISSUER', expected: 'the issuer URL (https://...)', parse: url, default: undefined }),
  jwtJwksUrl: setting({ env: 'JWT_JWKS_URL', expected: 'an https JWKS URL (default: from the issuer\'s /.well-known/openid-configuration)', parse: url, default: undefined }),
  jwtAudience: setting({ env: 'JWT_AUDIENCE', expected: 'the audience tokens must name', parse: parse.string, default: undefined }),
  jwtUserClaim: setting({ env: 'JWT_USER_CLAIM', expected: 'a claim name', parse: parse.string, default: 'sub' }),
  jwtGroupsClaim: setting({ env: 'JWT_GROUPS_CLAIM', expected: 'a claim name', parse: parse.string, default: 'groups' }),
  ldapUrl: setting({ env: 'LDAP_URL', expected: 'an ldap:// or ldaps:// URL', parse: ldapUrl, default: undefined }),
  ldapUserDn: setting({ env: 'LDAP_USER_DN', expected: 'a DN template with {user}, such as uid={user},ou=people,dc=example,dc=org', parse: userTemplate, default: undefined }),
  ldapSearchBase: setting({ env: 'LDAP_SEARCH_BASE', expected: 'a base DN', parse: parse.string, default: undefined }),
  ldapSearchFilter: setting({ env: 'LDAP_SEARCH_FILTER', expected: 'a filter with {user}, such as (uid={user})', parse: userTemplate, default: '(uid={user})' }),
  ldapBindDn: setting({ env: 'LDAP_BIND_DN', expected: 'a DN', parse: parse.string, default: undefined }),
  ldapBindPassword: setting({ env: 'LDAP_BIND_PASSWORD', expected: 'a password', parse: parse.string, default: undefined, noFlag: true, secret: true }),
  ldapGroupBase: setting({ env: 'LDAP_GROUP_BASE', expected: 'a base DN', parse: parse.string, default: undefined }),
  ldapGroupFilter: setting({ env: 'LDAP_GROUP_FILTER', expected: 'a filter with {dn} and/or {user}', parse: parse.string, default: '(|(member={dn})(uniqueMember={dn})(memberUid={user}))' }),
  ldapStartTls: setting({ env: 'LDAP_STARTTLS', expected: BOOLEAN, parse: parse.boolean, default: false }),
  ldapCa: setting({ env: 'LDAP_CA', expected: 'a path to a PEM file', parse: parse.string, default: undefined }),

  // The authorisation-aware cache (src/access/): who may read cached content of repositories that need credentials.
  accessCheckTtl: setting({ env: 'ACCESS_CHECK_TTL', expected: DURATION, parse: parse.duration, default: 5 * 60_000 }),
  anonymousAccessTtl: setting({ env: 'ANONYMOUS_ACCESS_TTL', expected: DURATION, parse: parse.duration, default: 60 * 60_000 }),
  accessCheckFailOpen: setting({
    env: 'ACCESS_CHECK_FAIL_OPEN',
    expected: 'hostnames or *.domain wildcards separated by spaces (host:port for one port)',
    parse: parse.hostnamePortPatterns,
    default: [],
  }),

  // Operations (src/metrics/, src/admin/, src/status/, src/prefetch/): /metrics, the status page and
  // the admin API live on a listener of their own when ADMIN_LISTEN is set, else on the HTTP listener.
  adminListen: setting({ env: 'ADMIN_LISTEN', expected: `${LISTEN}, or off (then the HTTP listener serves them)`, parse: parse.optionalListen, default: null }),
  // Who may call the admin API at all, before any token is looked at (the status page and /metrics are not limited by it).
  adminAllowNetworks: setting({ env: 'ADMIN_ALLOW_NETWORKS', expected: NETWORKS, parse: networks, default: ['127.0.0.0/8', '::1'] }),
  // The admin token (a bearer token); created with a random value when missing (default <data-dir>/admin.token).
  adminTokenFile: setting({ env: 'ADMIN_TOKEN_FILE', expected: 'a file path', parse: parse.string, default: undefined }),
  // Names besides Layover's own (addresses, localhost, docker.proxy, the hostname) that a browser may
  // reach the status page, /metrics and the admin API under: a name of another site pointed at
  // Layover (DNS rebinding) must not read them. `*`: any name.
  adminHostnames: setting({ env: 'ADMIN_HOSTNAMES', expected: 'hostnames or *.domain wildcards separated by spaces, or *', parse: hostnamesOrAny, default: [] }),
  // With client authentication on: members of this group are admins too (and may see the status page and /metrics).
  adminGroup: setting({ env: 'ADMIN_GROUP', expected: 'a group name', parse: parse.string, default: 'layover-admins' }),
  metrics: setting({ env: 'METRICS', expected: BOOLEAN, parse: parse.boolean, default: true }),
  // Docker Hub's pull budget (RateLimit-Remaining): below this many pulls a warning is logged and cached tags are served first.
  dockerHubBudgetLow: setting({ env: 'DOCKER_HUB_BUDGET_LOW', expected: 'a number of pulls', parse: parse.count, default: 20 }),
  // Images kept warm: fetched at start and again every PREFETCH_INTERVAL (all platforms).
  prefetch: setting({ env: 'PREFETCH', expected: 'image references such as docker.io/library/alpine:3.20 separated by spaces or commas', parse: stringList, default: [] }),
  prefetchInterval: setting({ env: 'PREFETCH_INTERVAL', expected: `${DURATION}, above 0`, parse: positiveDuration, default: 6 * 3_600_000 }),
  prefetchReferrers: setting({ env: 'PREFETCH_REFERRERS', expected: BOOLEAN, parse: parse.boolean, default: false }),
  // auto: human-readable lines on a terminal, JSON otherwise.
  logFormat: setting<'auto' | 'json' | 'pretty'>({ env: 'LAYOVER_LOG_FORMAT', expected: 'auto, json or pretty', parse: oneOf('auto', 'json', 'pretty'), default: 'auto' }),

  // Custom domains (src/registry/custom-domains.ts): a name of yours in front of an upstream registry and prefix.
  customDomains: setting({ env: null, expected: 'a list of {from: domain[/path], to: registry[/prefix], certFile?, keyFile?}', parse: parse.raw, default: [], noFlag: true }),
};

export type SettingKey = keyof typeof SETTINGS;
export type RawConfig = { [K in SettingKey]: (typeof SETTINGS)[K] extends Setting<infer T> ? T : never };

/** `manifestCachePrimaryRegex` -> `manifest-cache-primary-regex`. */
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
