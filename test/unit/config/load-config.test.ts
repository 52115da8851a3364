import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/config-error.js';
import { loadConfig, type ConfigSources } from '../../../src/config/load-config.js';

const machine = { advertise: () => ['192.0.2.10'], upstreamDns: () => [{ host: '127.0.0.53', port: 53 }], ownNetworks: () => ['127.0.0.0/8', '::1/128', '192.0.2.0/24'] };
const load = (sources: ConfigSources = {}) => loadConfig({ env: {}, machine, ...sources });
const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
};
const tempFile = (name: string, text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'layover-config-')), name);
  writeFileSync(path, text);
  return path;
};

describe('loadConfig defaults', () => {
  const config = load();
  it('has the documented listeners and directories', () => {
    expect(config.listen).toEqual({
      https: { host: '0.0.0.0', port: 443 },
      http: { host: '0.0.0.0', port: 80 },
      dns: { host: '0.0.0.0', port: 53 },
      proxy: { host: '0.0.0.0', port: 3128 },
    });
    expect(config.connectPolicy).toBe('tunnel');
    expect(config.customDomains).toEqual([]);
    expect(config.accessChecks).toEqual({ ttlMs: 300_000, anonymousTtlMs: 3_600_000, failOpen: [] });
    expect(config.timeouts.shutdownGraceMs).toBe(25_000);
    expect(load({ env: { SHUTDOWN_GRACE: '5s' } }).timeouts.shutdownGraceMs).toBe(5_000);
    expect(config.timeouts.shutdownDrainMs).toBe(5_000);
    expect(load({ env: { SHUTDOWN_DRAIN: '2s' } }).timeouts.shutdownDrainMs).toBe(2_000);
    expect(load({ env: { SHUTDOWN_DRAIN: '0s' } }).timeouts.shutdownDrainMs).toBe(0);
    // The drain is part of the grace, never longer.
    // The default drain shrinks to half a short grace; a drain the operator chose that does not fit is refused.
    expect(load({ env: { SHUTDOWN_GRACE: '3s' } }).timeouts.shutdownDrainMs).toBe(1_500);
    expect(errorOf(() => load({ env: { SHUTDOWN_GRACE: '3s', SHUTDOWN_DRAIN: '10s' } }))).toBe('SHUTDOWN_DRAIN: expected less than SHUTDOWN_GRACE (3000 ms), got 10000 ms');
    expect(errorOf(() => load({ env: { SHUTDOWN_DRAIN: 'soon' } }))).toMatch(/SHUTDOWN_DRAIN: expected/);
    expect(config.dataDir).toBe(join(process.cwd(), 'data'));
    expect(config.caDir).toBe(join(process.cwd(), 'data', 'ca'));
  });
  it('intercepts the default registries plus Docker Hub and docker.proxy', () => {
    for (const host of ['quay.io', 'registry.k8s.io', 'ghcr.io', 'registry-1.docker.io', 'auth.docker.io', 'docker.proxy']) {
      expect(config.registries).toContain(host);
    }
  });
  it('keeps the nginx proxies defaults', () => {
    expect(config.cacheMaxSize).toBe(32 * 1024 ** 3);
    expect(config.manifestCache.enabled).toBe(false);
    expect(config.manifestCache.defaultTtlMs).toBe(3_600_000);
    expect(config.manifestCache.tiers.map((t) => t.ttlMs)).toEqual([600_000, 60 * 86_400_000]);
    expect(config.manifestCache.tiers[0]!.pattern.test('stable')).toBe(true);
    expect(config.manifestCache.tiers[1]!.pattern.test('1.2.3')).toBe(true);
    expect(config.allowPush).toBe(false);
    expect(config.timeouts.keepaliveMs).toBe(300_000);
    expect(config.timeouts.proxyReadMs).toBe(60_000);
  });
  it('takes machine defaults for advertise and upstream DNS', () => {
    expect(config.advertise).toEqual(['192.0.2.10']);
    expect(config.upstreamDns).toEqual([{ host: '127.0.0.53', port: 53 }]);
  });
  it('is frozen', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen.https)).toBe(true);
    expect(() => (config.registries as string[]).push('x')).toThrow();
  });
});

describe('loadConfig precedence: defaults < file < environment < flags', () => {
  const file = tempFile('layover.yaml', 'dataDir: /from/file\ncacheMaxSize: 1g\nallowPush: true\nregistries: [quay.io, "*.pkg.dev"]\n');
  it('file over defaults', () => {
    const config = load({ flags: { config: file } });
    expect(config.dataDir).toBe('/from/file');
    expect(config.cacheMaxSize).toBe(1024 ** 3);
    expect(config.allowPush).toBe(true);
    expect(config.registries).toContain('*.pkg.dev');
    expect(config.registries).not.toContain('gcr.io');
  });
  it('environment over file, flags over environment', () => {
    const env = { LAYOVER_CONFIG: file, CACHE_MAX_SIZE: '2g', LAYOVER_DATA_DIR: '/from/env' };
    const config = load({ env, flags: { 'data-dir': '/from/flag' } });
    expect(config.cacheMaxSize).toBe(2 * 1024 ** 3);
    expect(config.dataDir).toBe('/from/flag');
    expect(config.caDir).toBe('/from/flag/ca');
  });
  it('reads JSON files too', () => {
    const json = tempFile('layover.json', JSON.stringify({ dns: 'off', advertise: ['10.1.2.3', 'fd00::1'] }));
    const config = load({ flags: { config: json } });
    expect(config.listen.dns).toBeNull();
    expect(config.advertise).toEqual(['10.1.2.3', 'fd00::1']);
  });
});

describe('loadConfig parsing', () => {
  it('parses listeners, resolvers and switches', () => {
    const config = load({
      flags: { https: '127.0.0.1:8443', http: 'off', dns: ':5353', 'upstream-dns': '127.0.0.3,[::1]:5300,10.0.0.1:54' },
      env: { REGISTRIES: 'Quay.io  my.registry.example', ENABLE_MANIFEST_CACHE: 'true', MANIFEST_CACHE_SECONDARY_REGEX: '' },
    });
    expect(config.listen.https).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(config.listen.http).toBeNull();
    expect(config.listen.dns).toEqual({ host: '0.0.0.0', port: 5353 });
    expect(config.upstreamDns).toEqual([
      { host: '127.0.0.3', port: 53 },
      { host: '::1', port: 5300 },
      { host: '10.0.0.1', port: 54 },
    ]);
    expect(config.registries.slice(0, 2)).toEqual(['quay.io', 'my.registry.example']);
    expect(config.registryPorts).toEqual([]);
    const ported = load({ env: { REGISTRIES: 'r.example:5000 quay.io:443 *.pkg.dev:5000 s.example:6000' } });
    expect(ported.registries.slice(0, 4)).toEqual(['r.example', 'quay.io', '*.pkg.dev', 's.example']);
    expect(ported.registryPorts).toEqual([5000, 6000]);
    expect(() => load({ env: { REGISTRIES: 'r.example:99999' } })).toThrow(/REGISTRIES: expected/);
    expect(config.manifestCache.enabled).toBe(true);
    expect(config.manifestCache.tiers).toHaveLength(1);
  });

  it('reads AUTH_REGISTRIES with the nginx proxies delimiters', () => {
    const config = load({ env: { AUTH_REGISTRIES: 'auth.docker.io:alice:pa:ss quay.io:bob:secret2' } });
    expect(config.credentials.map((c) => [c.registry, c.username, c.password.reveal()])).toEqual([
      ['auth.docker.io', 'alice', 'pa:ss'],
      ['quay.io', 'bob', 'secret2'],
    ]);
    const custom = load({
      env: { AUTH_REGISTRIES: 'gcr.io:::_json_key:::{"a": "b c"};;;r.example:5000:::u:::p', AUTH_REGISTRIES_DELIMITER: ';;;', AUTH_REGISTRY_DELIMITER: ':::' },
    });
    expect(custom.credentials.map((c) => [c.registry, c.username, c.password.reveal()])).toEqual([
      ['gcr.io', '_json_key', '{"a": "b c"}'],
      ['r.example:5000', 'u', 'p'],
    ]);
  });

  it('reads credentials from files and the environment in the config file', () => {
    const secretFile = tempFile('quay-password', 'from-a-file\n');
    const file = tempFile('c.yaml', `authRegistries:\n  - {registry: quay.io, username: bot, passwordFile: ${secretFile}}\n  - {registry: ghcr.io, username: me, passwordEnv: GHCR_TOKEN}\n`);
    const config = load({ flags: { config: file }, env: { GHCR_TOKEN: 'from-env' } });
    expect(config.credentials.map((c) => c.password.reveal())).toEqual(['from-a-file', 'from-env']);
  });

  it('never shows a credential when printed, serialised or in an error', () => {
    const config = load({ env: { AUTH_REGISTRIES: 'quay.io:bob:hunter2' } });
    expect(JSON.stringify(config)).not.toContain('hunter2');
    expect(inspect(config, { depth: 10 })).not.toContain('hunter2');
    expect(`${config.credentials[0]!.password}`).not.toContain('hunter2');
    const message = errorOf(() => load({ env: { AUTH_REGISTRIES: 'quay.io:hunter2' } }));
    expect(message).toMatch(/^AUTH_REGISTRIES: entry 1 is not hostname:username:password$/);
    expect(errorOf(() => load({ env: { AUTH_REGISTRIES: 'bad host:u:hunter2' } }))).not.toContain('hunter2');
  });
});

describe('loadConfig defences against strangers', () => {
  it('allows recursion to private networks and the host\'s own by default, and to what DNS_ALLOW_RECURSION names instead', () => {
    const defaults = load().dnsPolicy;
    for (const network of ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', 'fe80::/10', 'fc00::/7']) {
      expect(defaults.allowRecursion).toContain(network);
    }
    expect(load({ machine: { ...machine, recursionNetworks: () => ['203.0.113.0/24'] } }).dnsPolicy.allowRecursion).toEqual(['203.0.113.0/24']);
    const configured = load({ env: { DNS_ALLOW_RECURSION: '192.0.2.0/24, 2001:db8::/32', DNS_RATE_LIMIT: '0', DNS_TCP_QUERY_TIMEOUT: '2s' } }).dnsPolicy;
    expect(configured).toEqual({
      allowRecursion: ['192.0.2.0/24', '2001:db8::/32'],
      rateLimit: 0,
      rateLimitExempt: ['127.0.0.0/8', '::1/128', '192.0.2.0/24'],
      rateLimitSlip: 2,
      tcpQueryMs: 2_000,
      tcpMaxPerClient: 16,
    });
  });

  it('tunnels CONNECTs for the networks of DNS_ALLOW_RECURSION by default, and for what CONNECT_ALLOW_NETWORKS names instead', () => {
    expect(load().connectAllowNetworks).toEqual(load().dnsPolicy.allowRecursion);
    expect(load({ machine: { ...machine, recursionNetworks: () => ['203.0.113.0/24'] } }).connectAllowNetworks).toEqual(['203.0.113.0/24']);
    expect(load({ env: { DNS_ALLOW_RECURSION: '198.51.100.0/24' } }).connectAllowNetworks).toEqual(['198.51.100.0/24']);
    expect(load({ env: { CONNECT_ALLOW_NETWORKS: '192.0.2.0/24, 2001:db8::/32', DNS_ALLOW_RECURSION: '198.51.100.0/24' } }).connectAllowNetworks).toEqual(['192.0.2.0/24', '2001:db8::/32']);
    expect(() => load({ env: { CONNECT_ALLOW_NETWORKS: 'the internet' } })).toThrow(/CONNECT_ALLOW_NETWORKS/);
  });

  it('spares loopback and the host\'s own networks from the DNS rate limit by default, what DNS_RATE_LIMIT_EXEMPT names instead, or nobody', () => {
    const host = loadConfig({ env: {} }).dnsPolicy.rateLimitExempt;
    expect(host).toEqual(expect.arrayContaining(['127.0.0.0/8', '::1/128']));
    expect(host).not.toContain('10.0.0.0/8');
    expect(load({ env: { DNS_RATE_LIMIT_EXEMPT: '10.96.0.10, fd00:10::/64' } }).dnsPolicy.rateLimitExempt).toEqual(['10.96.0.10', 'fd00:10::/64']);
    expect(load({ flags: { 'dns-rate-limit-exempt': '10.96.0.0/12' } }).dnsPolicy.rateLimitExempt).toEqual(['10.96.0.0/12']);
    for (const nobody of ['none', 'NONE', '']) expect(load({ env: { DNS_RATE_LIMIT_EXEMPT: nobody } }).dnsPolicy.rateLimitExempt).toEqual([]);
    expect(errorOf(() => load({ env: { DNS_RATE_LIMIT_EXEMPT: 'coredns.kube-system' } }))).toMatch(/^DNS_RATE_LIMIT_EXEMPT: expected networks such as .*, or none, got "coredns.kube-system"$/);
  });

  it('caps connections and handshakes, with flags taking precedence', () => {
    expect(load().connections).toEqual({ maxPerListener: 4096, maxPerClient: 256, tlsHandshakeMs: 5_000 });
    const flagged = load({ env: { MAX_CONNECTIONS: '100' }, flags: { 'max-connections': '50', 'max-connections-per-client': '0', 'tls-handshake-timeout': '1s' } });
    expect(flagged.connections).toEqual({ maxPerListener: 50, maxPerClient: 0, tlsHandshakeMs: 1_000 });
  });

  it('answers DNS on the main thread alone unless DNS_UDP_WORKERS asks for workers', () => {
    expect(load().dnsUdpWorkers).toBe(0);
    expect(load({ env: { DNS_UDP_WORKERS: '0' } }).dnsUdpWorkers).toBe(0);
    expect(load({ env: { DNS_UDP_WORKERS: 'AUTO' } }).dnsUdpWorkers).toBe('auto');
    expect(load({ env: { DNS_UDP_WORKERS: '2' } }).dnsUdpWorkers).toBe(2);
    expect(() => load({ env: { DNS_UDP_WORKERS: 'many' } })).toThrow('DNS_UDP_WORKERS: expected auto or a number of threads (0: the main thread alone), got "many"');
  });
});

describe('loadConfig shared stores', () => {
  it('keeps blobs in files and the index in SQLite by default', () => {
    const config = load();
    expect(config.blobStore).toEqual({ kind: 'file' });
    expect(config.cacheIndex).toEqual({ kind: 'sqlite' });
    expect(config.blobRedirect).toBe('off');
  });

  it('reads an S3 bucket, prefix, endpoint, region and addressing style from BLOB_STORE', () => {
    expect(load({ env: { BLOB_STORE: 's3://layover-cache/blobs/v1/?endpoint=http://127.0.0.1:4568&region=eu-west-1' } }).blobStore).toEqual({
      kind: 's3', bucket: 'layover-cache', prefix: 'blobs/v1', endpoint: 'http://127.0.0.1:4568', region: 'eu-west-1', pathStyle: true,
    });
    expect(load({ env: { BLOB_STORE: 's3://layover-cache' } }).blobStore).toEqual({ kind: 's3', bucket: 'layover-cache', prefix: '', endpoint: null, region: null, pathStyle: false });
    expect(load({ env: { BLOB_STORE: 's3://layover-cache', BLOB_REDIRECT: 'presigned' } }).blobRedirect).toBe('presigned');
  });

  it('gives replicas of a shared index a peer address: the host\'s own at the HTTPS port unless set; none without peers', () => {
    const shared = { CACHE_INDEX: 'redis://127.0.0.1', BLOB_STORE: 's3://bucket' };
    expect(load({ env: { ...shared, LAYOVER_ADVERTISE: '10.96.0.20', LAYOVER_HTTPS: '0.0.0.0:8443' } }).peerAddress).toEqual({ host: '192.0.2.10', port: 8443 });
    expect(load({ env: { ...shared, PEER_ADDRESS: '10.1.2.3' } }).peerAddress).toEqual({ host: '10.1.2.3', port: 443 });
    expect(load({ env: { ...shared, PEER_ADDRESS: '[fd00::5]:9443' } }).peerAddress).toEqual({ host: 'fd00::5', port: 9443 });
    expect(load({ env: { ...shared, PEER_ADDRESS: 'off' } }).peerAddress).toBeNull();
    expect(load({ env: { PEER_ADDRESS: '10.1.2.3' } }).peerAddress).toBeNull();
  });

  it('keeps a shared index URL as a secret: it may hold a password', () => {
    const config = load({ env: { CACHE_INDEX: 'redis://:hunter2@127.0.0.1:6379/0', BLOB_STORE: 's3://bucket' } });
    expect(config.cacheIndex.kind).toBe('redis');
    expect(JSON.stringify(config)).not.toContain('hunter2');
    expect(inspect(config, { depth: 9 })).not.toContain('hunter2');
    expect(load({ env: { CACHE_INDEX: 'postgres://layover@127.0.0.1/layover', BLOB_STORE: 's3://bucket' } }).cacheIndex.kind).toBe('postgres');
  });

  it.each([
    [{ BLOB_STORE: 'gs://bucket' }, 'BLOB_STORE: expected file or s3://bucket/prefix'],
    [{ BLOB_STORE: 's3://Bad_Bucket' }, 'BLOB_STORE: "Bad_Bucket" is not an S3 bucket name'],
    [{ BLOB_STORE: 's3://key:secret@bucket' }, 'BLOB_STORE: credentials do not belong in the URL: they come from the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, roles)'],
    [{ BLOB_STORE: 's3://bucket?endpoint=ftp://x' }, 'BLOB_STORE: endpoint: expected an http(s) URL, got "ftp://x"'],
    [{ BLOB_STORE: 's3://bucket?endpoint=https://key:secret@minio:9000' }, 'BLOB_STORE: endpoint: credentials do not belong in the URL: they come from the standard AWS chain'],
    [{ BLOB_STORE: 's3://bucket?acl=public' }, 'BLOB_STORE: unknown parameter acl (known: endpoint, region, pathStyle)'],
    [{ BLOB_REDIRECT: 'presigned' }, 'BLOB_REDIRECT: presigned needs BLOB_STORE=s3://…'],
    [{ CACHE_INDEX: 'mysql://root:pw@db/x' }, 'CACHE_INDEX: expected sqlite, redis://host:port or postgres://user@host/db'],
    [{ CACHE_INDEX: 'redis://127.0.0.1', BLOB_STORE: 's3://bucket', PEER_ADDRESS: 'layover-0.layover' }, 'PEER_ADDRESS: expected IP, IP:PORT or [IPv6]:PORT, or off, got "layover-0.layover"'],
    [{ CACHE_INDEX: 'redis://127.0.0.1', BLOB_STORE: 's3://bucket', PEER_ADDRESS: '0.0.0.0:443' }, 'PEER_ADDRESS: expected an address the other replicas can dial, not 0.0.0.0'],
  ])('rejects %j', (env, message) => {
    expect(errorOf(() => load({ env }))).toBe(message);
  });
});

describe('loadConfig errors name the setting and the expected form', () => {
  it.each([
    [{ env: { CACHE_MAX_SIZE: 'lots' } }, 'CACHE_MAX_SIZE: expected a size such as 32g, got "lots"'],
    [{ flags: { https: '0.0.0.0:99999' } }, '--https: expected ADDR:PORT such as 0.0.0.0:443, got "0.0.0.0:99999"'],
    [{ flags: { dns: 'example.com:53' } }, '--dns: expected ADDR:PORT such as 0.0.0.0:443, or off, got "example.com:53"'],
    [{ env: { MANIFEST_CACHE_PRIMARY_TIME: 'soon' } }, 'MANIFEST_CACHE_PRIMARY_TIME: expected a duration such as 60s, 10m, 1h or 60d, got "soon"'],
    [{ env: { MANIFEST_CACHE_PRIMARY_REGEX: '(unclosed' } }, 'MANIFEST_CACHE_PRIMARY_REGEX: expected a regular expression, got "(unclosed"'],
    [{ env: { ALLOW_PUSH: 'maybe' } }, 'ALLOW_PUSH: expected true or false, got "maybe"'],
    [{ env: { REGISTRIES: 'quay.io bad_host!' } }, 'REGISTRIES: expected hostnames or *.domain wildcards, each with an optional :port, separated by spaces, got "quay.io bad_host!"'],
    [{ flags: { advertise: '10.0.0.1,nope' } }, '--advertise: expected IP addresses separated by commas, got "10.0.0.1,nope"'],
    [{ flags: { 'upstream-dns': '1.1.1.1:x' } }, '--upstream-dns: expected resolvers as IP[:PORT] separated by commas, got "1.1.1.1:x"'],
    [{ flags: { 'upstream-ca': '/nonexistent/ca.pem' } }, '--upstream-ca: expected a readable PEM file of certificates, got "/nonexistent/ca.pem"'],
    [{ env: { DNS_TCP_QUERY_TIMEOUT: '0' } }, 'DNS_TCP_QUERY_TIMEOUT: expected a duration such as 60s, 10m, 1h or 60d, above 0, got "0"'],
    [{ env: { TLS_HANDSHAKE_TIMEOUT: '0s' } }, 'TLS_HANDSHAKE_TIMEOUT: expected a duration such as 60s, 10m, 1h or 60d, above 0, got "0s"'],
    [{ env: { MAX_CONNECTIONS: '-1' } }, 'MAX_CONNECTIONS: expected a number of connections per listener (0: no cap), got "-1"'],
    [{ env: { DNS_ALLOW_RECURSION: '10.0.0.0/8,everyone' } }, 'DNS_ALLOW_RECURSION: expected networks such as 10.0.0.0/8 or fd00::/8 (or addresses) separated by commas, got "10.0.0.0/8,everyone"'],
    [{ env: { PREFETCH: 'docker.io/library/alpine:3.20 alpine@sha256:nope' } }, 'PREFETCH: "alpine@sha256:nope" is not an image reference: the digest is not sha256:<64 hex> or sha512:<128 hex>'],
    [{ env: { ADMIN_ALLOW_NETWORKS: 'anyone' } }, 'ADMIN_ALLOW_NETWORKS: expected networks such as 10.0.0.0/8 or fd00::/8 (or addresses) separated by commas, got "anyone"'],
    [{ env: { LAYOVER_LOG_FORMAT: 'xml' } }, 'LAYOVER_LOG_FORMAT: expected auto, json or pretty, got "xml"'],
  ])('%j', (sources, message) => {
    expect(errorOf(() => load(sources as ConfigSources))).toBe(message);
  });

  it('names the file for file settings and rejects unknown keys', () => {
    const file = tempFile('bad.yaml', 'keepaliveTimeout: forever\n');
    expect(errorOf(() => load({ flags: { config: file } }))).toBe(
      `keepaliveTimeout (in ${file}): expected a duration such as 60s, 10m, 1h or 60d, got "forever"`,
    );
    const typo = tempFile('typo.yaml', 'dataDirectory: /x\n');
    expect(errorOf(() => load({ flags: { config: typo } }))).toMatch(/unknown setting "dataDirectory"/);
    const broken = tempFile('broken.yaml', 'a: [1, 2\n');
    expect(errorOf(() => load({ flags: { config: broken } }))).toMatch(/not valid YAML or JSON/);
    expect(errorOf(() => load({ flags: { config: '/nonexistent.yaml' } }))).toMatch(/cannot read it \(ENOENT\)/);
  });
});

describe('loadConfig storage redirects', () => {
  it('rewrites by default and allows no extra networks', () => {
    expect(load().redirects).toEqual({ mode: 'rewrite', allowNetworks: [], keyFile: join(process.cwd(), 'data', 'redirect.key') });
  });

  it('keeps the signing keys in the data dir unless REDIRECT_KEY_FILE and CLIENT_TOKEN_KEY_FILE say where, paths resolved', () => {
    const defaults = load({ env: { LAYOVER_DATA_DIR: '/var/lib/layover' } });
    expect([defaults.redirects.keyFile, defaults.clientAuth.tokenKeyFile]).toEqual(['/var/lib/layover/redirect.key', '/var/lib/layover/client-token-key.pem']);
    const given = load({ env: { REDIRECT_KEY_FILE: 'keys/redirect.key' }, flags: { 'client-token-key-file': '/etc/layover/token.pem' } });
    expect([given.redirects.keyFile, given.clientAuth.tokenKeyFile]).toEqual([join(process.cwd(), 'keys', 'redirect.key'), '/etc/layover/token.pem']);
  });

  it('reads REDIRECTS and REDIRECT_ALLOW_NETWORKS from the environment, flags and the file', () => {
    expect(load({ env: { REDIRECTS: 'Follow', REDIRECT_ALLOW_NETWORKS: '10.0.0.0/8, fd00::/8 192.0.2.7' } }).redirects).toMatchObject({
      mode: 'follow',
      allowNetworks: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'],
    });
    expect(load({ flags: { redirects: 'follow', 'redirect-allow-networks': '127.0.0.5/32' } }).redirects).toMatchObject({ mode: 'follow', allowNetworks: ['127.0.0.5/32'] });
    const file = tempFile('redirects.yaml', 'redirects: follow\nredirectAllowNetworks: [10.1.0.0/16]\n');
    expect(load({ flags: { config: file } }).redirects).toMatchObject({ mode: 'follow', allowNetworks: ['10.1.0.0/16'] });
  });

  it.each([
    [{ env: { REDIRECTS: 'cache' } }, 'REDIRECTS: expected rewrite or follow, got "cache"'],
    [
      { env: { REDIRECT_ALLOW_NETWORKS: '10.0.0.0/33' } },
      'REDIRECT_ALLOW_NETWORKS: expected networks such as 10.0.0.0/8 or fd00::/8 (or addresses) separated by commas, got "10.0.0.0/33"',
    ],
    [
      { flags: { 'redirect-allow-networks': 'storage.internal' } },
      '--redirect-allow-networks: expected networks such as 10.0.0.0/8 or fd00::/8 (or addresses) separated by commas, got "storage.internal"',
    ],
  ])('rejects %j', (sources, message) => {
    expect(errorOf(() => load(sources as ConfigSources))).toBe(message);
  });
});

describe('loadConfig client authentication', () => {
  it('is off by default, with the default access rules', () => {
    expect(load().clientAuth).toEqual({
      mode: 'none',
      htpasswdFile: null,
      tokens: [],
      groups: {},
      accessRules: null,
      challenge: 'basic',
      tokenTtlMs: 900_000,
      tokenKeyFile: join(process.cwd(), 'data', 'client-token-key.pem'),
      cacheTtlMs: 60_000,
      jwt: null,
      ldap: null,
    });
  });
  it('reads CLIENT_AUTH and HTPASSWD_FILE from the environment and flags, and resolves the path', () => {
    expect(load({ env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: 'users.htpasswd' } }).clientAuth).toMatchObject({ mode: 'htpasswd', htpasswdFile: join(process.cwd(), 'users.htpasswd') });
    expect(load({ flags: { 'client-auth': 'HTPASSWD', 'htpasswd-file': '/etc/layover/htpasswd' } }).clientAuth.htpasswdFile).toBe('/etc/layover/htpasswd');
  });
  it('names the setting when htpasswd has no file, tokens have no entries or the mode is unknown', () => {
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'htpasswd' } }))).toMatch(/^HTPASSWD_FILE: CLIENT_AUTH=htpasswd needs a path/);
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'tokens' } }))).toMatch(/^clientTokens \(config file\): CLIENT_AUTH=tokens needs at least one entry/);
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'kerberos' } }))).toBe('CLIENT_AUTH: expected none, htpasswd, tokens, jwt or ldap, got "kerberos"');
  });
  it('takes tokens, groups and access rules only from the config file', () => {
    const tokenFile = tempFile('token', 'file-token-0123456789\n');
    const file = tempFile(
      'layover.yaml',
      [
        'clientAuth: tokens',
        'clientTokens:',
        '  - {user: ci, token: inline-token-0123456789, groups: [robots]}',
        `  - {user: bob, tokenFile: ${tokenFile}}`,
        '  - {user: eve, tokenEnv: EVE_TOKEN}',
        'clientGroups: {admins: [bob]}',
        'accessRules:',
        '  - {groups: [robots], registries: [ghcr.io], repositories: ["team/**"], actions: [pull]}',
        '  - {users: [bob], actions: [pull, push]}',
      ].join('\n'),
    );
    const config = load({ flags: { config: file }, env: { EVE_TOKEN: 'env-token-0123456789' } });
    expect(config.clientAuth.tokens.map((t) => [t.user, t.token.reveal(), t.groups])).toEqual([
      ['ci', 'inline-token-0123456789', ['robots']],
      ['bob', 'file-token-0123456789', []],
      ['eve', 'env-token-0123456789', []],
    ]);
    expect(config.clientAuth.groups).toEqual({ admins: ['bob'] });
    expect(config.clientAuth.accessRules).toEqual([
      { groups: ['robots'], registries: ['ghcr.io'], repositories: ['team/**'], actions: ['pull'] },
      { users: ['bob'], actions: ['pull', 'push'] },
    ]);
    expect(inspect(config)).not.toContain('inline-token-0123456789');
    // No environment variable reaches a config-file-only setting.
    expect(load({ env: { clientTokens: 'x', CLIENTTOKENS: 'x' } }).clientAuth.tokens).toEqual([]);
  });
  it('rejects bad token entries and rules without echoing a token', () => {
    const secret = 'tiny-tok';
    const tokens = tempFile('t.yaml', `clientAuth: tokens\nclientTokens:\n  - {user: ci, token: ${secret}}\n`);
    const message = errorOf(() => load({ flags: { config: tokens } }));
    expect(message).toMatch(/clientTokens \(in .*t\.yaml\): entry 1: the token is shorter than 16 characters/);
    expect(message).not.toContain(secret);
    const rules = tempFile('r.yaml', 'accessRules:\n  - {users: [bob], actions: [delete]}\n');
    expect(errorOf(() => load({ flags: { config: rules } }))).toMatch(/accessRules \(in .*r\.yaml\): rule 1: actions: expected pull or push, got "delete"/);
    const extra = tempFile('x.yaml', 'accessRules:\n  - {user: bob, actions: [pull]}\n');
    expect(errorOf(() => load({ flags: { config: extra } }))).toMatch(/rule 1: unknown key "user"/);
  });
});

describe('loadConfig JWT and LDAP authentication', () => {
  it('reads the JWT settings and requires issuer and audience', () => {
    const env = { CLIENT_AUTH: 'jwt', JWT_ISSUER: 'https://idp.example.test/realms/ci', JWT_AUDIENCE: 'layover' };
    expect(load({ env }).clientAuth.jwt).toEqual({ issuer: env.JWT_ISSUER, jwksUrl: null, audience: 'layover', userClaim: 'sub', groupsClaim: 'groups' });
    expect(load({ env: { ...env, JWT_JWKS_URL: 'https://idp.example.test/keys', JWT_USER_CLAIM: 'email' } }).clientAuth.jwt).toMatchObject({ jwksUrl: 'https://idp.example.test/keys', userClaim: 'email' });
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'jwt', JWT_AUDIENCE: 'layover' } }))).toBe('JWT_ISSUER: CLIENT_AUTH=jwt needs the issuer URL');
    expect(errorOf(() => load({ env: { ...env, JWT_AUDIENCE: undefined } }))).toBe('JWT_AUDIENCE: CLIENT_AUTH=jwt needs the audience tokens must name');
    expect(errorOf(() => load({ env: { ...env, JWT_ISSUER: 'idp.example.test' } }))).toBe('JWT_ISSUER: expected the issuer URL (https://...), got "idp.example.test"');
    // Keys discovered over plain HTTP are anyone's on the path.
    expect(errorOf(() => load({ env: { ...env, JWT_ISSUER: 'http://idp.example.test' } }))).toMatch(/^JWT_ISSUER: expected/);
    expect(errorOf(() => load({ env: { ...env, JWT_JWKS_URL: 'http://idp.example.test/keys' } }))).toMatch(/^JWT_JWKS_URL: expected an https JWKS URL/);
    expect(load().clientAuth.jwt).toBeNull();
  });
  it('reads the LDAP settings: a DN template or a search, never both; the bind password is a secret', () => {
    const direct = load({ env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'ldap://127.0.0.1:389', LDAP_USER_DN: 'uid={user},ou=people,dc=example,dc=test' } });
    expect(direct.clientAuth.ldap).toMatchObject({ userDn: 'uid={user},ou=people,dc=example,dc=test', searchBase: null, bindDn: null, bindPassword: null, groupBase: null, startTls: false });
    const search = load({
      env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'ldaps://ldap.example.test', LDAP_SEARCH_BASE: 'dc=example,dc=test', LDAP_BIND_DN: 'cn=reader,dc=example,dc=test', LDAP_BIND_PASSWORD: 'reader-secret-1' },
    });
    expect(search.clientAuth.ldap).toMatchObject({ searchBase: 'dc=example,dc=test', searchFilter: '(uid={user})', bindDn: 'cn=reader,dc=example,dc=test' });
    expect(search.clientAuth.ldap?.bindPassword?.reveal()).toBe('reader-secret-1');
    expect(inspect(search)).not.toContain('reader-secret-1');
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'ldap' } }))).toBe('LDAP_URL: CLIENT_AUTH=ldap needs the server URL');
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'ldap://h' } }))).toMatch(/^LDAP_USER_DN: CLIENT_AUTH=ldap needs either LDAP_USER_DN/);
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'http://h', LDAP_USER_DN: 'uid={user}' } }))).toBe('LDAP_URL: expected an ldap:// or ldaps:// URL, got "http://h"');
    expect(errorOf(() => load({ env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'ldap://h', LDAP_USER_DN: 'uid=bob' } }))).toMatch(/^LDAP_USER_DN: expected a DN template with \{user\}/);
    const message = errorOf(() => load({ env: { CLIENT_AUTH: 'ldap', LDAP_URL: 'ldap://h', LDAP_SEARCH_BASE: 'dc=x', LDAP_BIND_PASSWORD: 'lonely-secret' } }));
    expect(message).toBe('LDAP_BIND_DN: LDAP_BIND_DN and LDAP_BIND_PASSWORD go together');
  });
});

describe('loadConfig HTTPS_PROXY mode, access checks and custom domains', () => {
  it('reads the proxy listener and CONNECT policy', () => {
    expect(load({ flags: { proxy: '127.0.0.1:8128' }, env: { CONNECT_POLICY: 'DENY' } })).toMatchObject({ listen: { proxy: { host: '127.0.0.1', port: 8128 } }, connectPolicy: 'deny' });
    expect(load({ env: { LAYOVER_PROXY: 'off' } }).listen.proxy).toBeNull();
    expect(errorOf(() => load({ env: { CONNECT_POLICY: 'maybe' } }))).toBe('CONNECT_POLICY: expected tunnel or deny, got "maybe"');
  });
  it('reads the names a browser may reach the operations routes under (ADMIN_HOSTNAMES)', () => {
    expect(load().admin.hostnames).toEqual([]);
    expect(load({ env: { ADMIN_HOSTNAMES: 'layover.corp.example *.ops.example' } }).admin.hostnames).toEqual(['layover.corp.example', '*.ops.example']);
    expect(load({ env: { ADMIN_HOSTNAMES: '*' } }).admin.hostnames).toEqual(['*']);
    // A Host is matched by its name: a port would never match.
    expect(() => load({ env: { ADMIN_HOSTNAMES: 'layover.corp.example:8080' } })).toThrow(/ADMIN_HOSTNAMES/);
    expect(() => load({ env: { ADMIN_HOSTNAMES: 'https://layover.corp.example/' } })).toThrow(/ADMIN_HOSTNAMES/);
  });
  it('reads the access-check durations and the fail-open registries', () => {
    const config = load({ env: { ACCESS_CHECK_TTL: '30s', ANONYMOUS_ACCESS_TTL: '2h', ACCESS_CHECK_FAIL_OPEN: 'ghcr.io *.example.test' } });
    expect(config.accessChecks).toEqual({ ttlMs: 30_000, anonymousTtlMs: 7_200_000, failOpen: ['ghcr.io', '*.example.test'] });
    // A port written out is that port only, 443 included.
    expect(load({ env: { ACCESS_CHECK_FAIL_OPEN: 'git.corp:443 r.example:5000' } }).accessChecks.failOpen).toEqual(['git.corp:443', 'r.example:5000']);
  });
  it('maps custom domains with optional paths, prefixes and certificates', () => {
    const cert = tempFile('d.crt', '-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n');
    const key = tempFile('d.key', '-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n');
    const file = tempFile(
      'domains.yaml',
      [
        'customDomains:',
        `  - {from: Docker.Example.com/team/app, to: gcr.io/my-project/team/app, certFile: ${cert}, keyFile: ${key}}`,
        `  - {from: docker.example.com, to: "registry.example.test:5000", certFile: ${cert}, keyFile: ${key}}`,
      ].join('\n'),
    );
    expect(load({ flags: { config: file } }).customDomains).toEqual([
      { domain: 'docker.example.com', pathPrefix: 'team/app', registry: 'gcr.io', upstreamPrefix: 'my-project/team/app', certFile: cert, keyFile: key },
      { domain: 'docker.example.com', pathPrefix: '', registry: 'registry.example.test:5000', upstreamPrefix: '', certFile: cert, keyFile: key },
    ]);
  });
  it.each([
    ['customDomains: {from: a.test}', /expected a list/],
    ['customDomains:\n  - {from: "a.test:8443", to: gcr.io}', /entry 1: from: no port here/],
    ['customDomains:\n  - {from: a.test/Team, to: gcr.io}', /entry 1: from: "Team" is not a repository name prefix/],
    ['customDomains:\n  - {from: a.test, to: "not a host"}', /entry 1: to: "not a host" is not a hostname/],
    ['customDomains:\n  - {from: a.test, to: gcr.io, certFile: /nonexistent.crt}', /certFile and keyFile go together/],
    ['customDomains:\n  - {from: a.test, to: gcr.io}\n  - {from: a.test/, to: quay.io}', /entry 2: a.test\/ is mapped twice/],
    ['customDomains:\n  - {from: a.test, to: gcr.io, cert: x}', /unknown key "cert"/],
  ])('rejects %j', (text, message) => {
    const file = tempFile('bad.yaml', text);
    expect(errorOf(() => load({ flags: { config: file } }))).toMatch(message);
  });
});
