import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve, join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import type * as Yaml from 'yaml';
import { ConfigError } from './config-error.js';
import { parseCredentials } from './credentials.js';
import { parseCustomDomains } from './custom-domains.js';
import { Secret } from './secret.js';
import { parseBlobStore, parseCacheIndex, parsePeerAddress } from './shared-stores.js';
import { parseAccessRules, parseClientGroups, parseClientTokens } from '../client-auth/client-auth-config.js';
import type { LayoverConfig, ManifestTier } from './layover-config.js';
import * as parse from './parsers.js';
import { SETTINGS, flagName, type RawConfig, type Setting, type SettingKey } from './settings.js';
import { defaultAdvertise, defaultRecursionNetworks, defaultUpstreamDns } from './system-defaults.js';
import { hostNetworks } from '../dns/client-networks.js';
import { REDIRECT_KEY_FILE } from '../proxy/redirects/signed-url.js';
import { ADMIN_TOKEN_FILE } from '../admin/admin-token.js';
import { parseImageReference } from '../prefetch/image-reference.js';
import { TOKEN_KEY_FILE } from '../client-auth/token-service/token-key-file.js';
import { DOCKER_HUB_HOSTS, DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/** The YAML parser, loaded only for a config file: most runs are configured by flags and environment. */
function parseYaml(text: string): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof Yaml).parse(text);
}

export type FlagValues = Record<string, string | boolean | undefined>;

export interface ConfigSources {
  /** Flag values as node:util parseArgs returns them (see configFlagOptions). */
  flags?: FlagValues;
  env?: NodeJS.ProcessEnv;
  /** Machine-dependent defaults; tests pass their own. */
  machine?: { advertise: () => string[]; upstreamDns: () => parse.HostPort[]; recursionNetworks?: () => string[]; ownNetworks?: () => string[] };
}

const KEYS = Object.keys(SETTINGS) as SettingKey[];
const isBoolean = (s: Setting<unknown>): boolean => s.parse === parse.boolean;

/** The parseArgs options of every setting that has a flag. */
export function configFlagOptions(): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const key of KEYS) {
    const s = SETTINGS[key] as Setting<unknown>;
    if (!s.noFlag && s.env !== null) options[flagName(key)] = { type: isBoolean(s) ? 'boolean' : 'string' };
  }
  return options;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`config file ${path}: cannot read it (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text); // YAML is a superset of JSON
  } catch (error) {
    throw new ConfigError(`config file ${path}: not valid YAML or JSON (${(error as Error).message.split('\n')[0]})`, { cause: error });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${path}: expected a mapping of settings`);
  for (const key of Object.keys(doc)) {
    if (!(key in SETTINGS) || key === 'config') {
      throw new ConfigError(`config file ${path}: unknown setting "${key}" (settings: ${KEYS.filter((k) => k !== 'config').join(', ')})`);
    }
  }
  return doc as Record<string, unknown>;
}

interface Found {
  value: unknown;
  label: string;
}

/** flags > environment > config file > default: the value of one setting and how to name it. */
function find(key: SettingKey, flags: FlagValues, env: NodeJS.ProcessEnv, file: Record<string, unknown>, filePath: string | undefined): Found | undefined {
  const s = SETTINGS[key] as Setting<unknown>;
  const flag = flagName(key);
  if (s.env !== null) {
    if (!s.noFlag && flags[flag] !== undefined) return { value: flags[flag], label: `--${flag}` };
    if (env[s.env] !== undefined) return { value: env[s.env], label: s.env };
  }
  if (file[key] !== undefined) return { value: file[key], label: `${key} (in ${filePath})` };
  return undefined;
}

function readRaw(flags: FlagValues, env: NodeJS.ProcessEnv, labels: Map<SettingKey, string>): { raw: Partial<RawConfig>; filePath: string | undefined } {
  const filePath = (flags.config as string | undefined) ?? env.LAYOVER_CONFIG;
  const file = filePath ? readConfigFile(filePath) : {};
  const raw: Record<string, unknown> = {};
  for (const key of KEYS) {
    const s = SETTINGS[key] as Setting<unknown>;
    const found = find(key, flags, env, file, filePath);
    labels.set(key, found?.label ?? s.env ?? `${key} (config file)`);
    if (!found) {
      raw[key] = s.default;
      continue;
    }
    const value = s.parse(found.value);
    if (value === undefined) {
      const got = s.secret ? '' : `, got ${JSON.stringify(found.value)}`;
      throw new ConfigError(`${found.label}: expected ${s.expected}${got}`);
    }
    raw[key] = value;
  }
  return { raw: raw as Partial<RawConfig>, filePath };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof RegExp) && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function readClientAuth(r: RawConfig, env: NodeJS.ProcessEnv, labels: Map<SettingKey, string>): LayoverConfig['clientAuth'] {
  const tokens = parseClientTokens(r.clientTokens, env);
  if (typeof tokens === 'string') throw new ConfigError(`${labels.get('clientTokens')}: ${tokens}`);
  const groups = parseClientGroups(r.clientGroups);
  if (typeof groups === 'string') throw new ConfigError(`${labels.get('clientGroups')}: ${groups}`);
  const accessRules = r.accessRules === undefined ? null : parseAccessRules(r.accessRules);
  if (typeof accessRules === 'string') throw new ConfigError(`${labels.get('accessRules')}: ${accessRules}`);
  if (r.clientAuth === 'htpasswd' && r.htpasswdFile === undefined) {
    throw new ConfigError(`${labels.get('htpasswdFile')}: CLIENT_AUTH=htpasswd needs a path to an htpasswd file of bcrypt hashes (htpasswd -B)`);
  }
  if (r.clientAuth === 'tokens' && tokens.length === 0) {
    throw new ConfigError(`${labels.get('clientTokens')}: CLIENT_AUTH=tokens needs at least one entry {user, token | tokenFile | tokenEnv} in the config file`);
  }
  return {
    mode: r.clientAuth,
    htpasswdFile: r.clientAuth === 'htpasswd' && r.htpasswdFile !== undefined ? resolve(r.htpasswdFile) : null,
    tokens,
    groups,
    accessRules,
    challenge: r.clientAuthChallenge,
    tokenTtlMs: r.clientTokenTtl,
    tokenKeyFile: resolve(r.clientTokenKeyFile ?? join(r.dataDir, TOKEN_KEY_FILE)),
    cacheTtlMs: r.clientAuthCacheTtl,
    jwt: r.clientAuth === 'jwt' ? readJwt(r, labels) : null,
    ldap: r.clientAuth === 'ldap' ? readLdap(r, labels) : null,
  };
}

function readJwt(r: RawConfig, labels: Map<SettingKey, string>): NonNullable<LayoverConfig['clientAuth']['jwt']> {
  if (r.jwtIssuer === undefined) throw new ConfigError(`${labels.get('jwtIssuer')}: CLIENT_AUTH=jwt needs the issuer URL`);
  if (r.jwtAudience === undefined) throw new ConfigError(`${labels.get('jwtAudience')}: CLIENT_AUTH=jwt needs the audience tokens must name`);
  return { issuer: r.jwtIssuer, jwksUrl: r.jwtJwksUrl ?? null, audience: r.jwtAudience, userClaim: r.jwtUserClaim, groupsClaim: r.jwtGroupsClaim };
}

function readLdap(r: RawConfig, labels: Map<SettingKey, string>): NonNullable<LayoverConfig['clientAuth']['ldap']> {
  if (r.ldapUrl === undefined) throw new ConfigError(`${labels.get('ldapUrl')}: CLIENT_AUTH=ldap needs the server URL`);
  if ((r.ldapUserDn === undefined) === (r.ldapSearchBase === undefined)) {
    throw new ConfigError(`${labels.get('ldapUserDn')}: CLIENT_AUTH=ldap needs either LDAP_USER_DN (bind directly) or LDAP_SEARCH_BASE (search, then bind), not both`);
  }
  if ((r.ldapBindDn === undefined) !== (r.ldapBindPassword === undefined)) {
    throw new ConfigError(`${labels.get('ldapBindDn')}: LDAP_BIND_DN and LDAP_BIND_PASSWORD go together`);
  }
  if (r.ldapCa !== undefined && !readableText(r.ldapCa).includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(`${labels.get('ldapCa')}: expected a readable PEM file of certificates, got "${r.ldapCa}"`);
  }
  return {
    url: r.ldapUrl,
    userDn: r.ldapUserDn ?? null,
    searchBase: r.ldapSearchBase ?? null,
    searchFilter: r.ldapSearchFilter,
    bindDn: r.ldapBindDn ?? null,
    bindPassword: r.ldapBindPassword === undefined ? null : new Secret(r.ldapBindPassword),
    groupBase: r.ldapGroupBase ?? null,
    groupFilter: r.ldapGroupFilter,
    startTls: r.ldapStartTls,
    ca: r.ldapCa === undefined ? null : resolve(r.ldapCa),
  };
}

/** A file's text, or '' when it cannot be read (the caller words the error). */
function readableText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * SHUTDOWN_DRAIN must leave time within SHUTDOWN_GRACE to finish what is in flight. The default
 * shrinks to half a short grace; a drain the operator chose that does not fit is an error.
 */
function drainWithin(r: RawConfig, labels: Map<SettingKey, string>): number {
  if (r.shutdownDrain < r.shutdownGrace) return r.shutdownDrain;
  if (r.shutdownDrain === SETTINGS.shutdownDrain.default) return Math.floor(r.shutdownGrace / 2);
  throw new ConfigError(`${labels.get('shutdownDrain')}: expected less than SHUTDOWN_GRACE (${r.shutdownGrace} ms), got ${r.shutdownDrain} ms`);
}

/** Reads, validates and freezes the configuration. Throws ConfigError naming the setting. */
export function loadConfig(sources: ConfigSources = {}): LayoverConfig {
  const env = sources.env ?? process.env;
  const machine = { advertise: defaultAdvertise, upstreamDns: () => defaultUpstreamDns(), recursionNetworks: defaultRecursionNetworks, ownNetworks: hostNetworks, ...sources.machine };
  const labels = new Map<SettingKey, string>();
  const { raw, filePath } = readRaw(sources.flags ?? {}, env, labels);
  const r = raw as RawConfig;

  const credentials = parseCredentials(r.authRegistries, r.authRegistriesDelimiter, r.authRegistryDelimiter, env);
  if (typeof credentials === 'string') throw new ConfigError(`${labels.get('authRegistries')}: ${credentials}`);

  if (r.upstreamCa !== undefined) {
    if (!readableText(r.upstreamCa).includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError(`${labels.get('upstreamCa')}: expected a readable PEM file of certificates, got "${r.upstreamCa}"`);
    }
  }

  const clientAuth = readClientAuth(r, env, labels);
  const customDomains = parseCustomDomains(r.customDomains);
  if (typeof customDomains === 'string') throw new ConfigError(`${labels.get('customDomains')}: ${customDomains}`);

  const blobStore = parseBlobStore(r.blobStore);
  if (typeof blobStore === 'string') throw new ConfigError(`${labels.get('blobStore')}: ${blobStore}`);
  const cacheIndex = parseCacheIndex(r.cacheIndex);
  if (typeof cacheIndex === 'string') throw new ConfigError(`${labels.get('cacheIndex')}: ${cacheIndex}`);
  // Replicas with files of their own would each drop the shared rows of blobs only the others hold.
  if (cacheIndex.kind !== 'sqlite' && blobStore.kind !== 's3') throw new ConfigError(`${labels.get('cacheIndex')}: a shared index describes shared blobs: it needs BLOB_STORE=s3://…`);
  // The fallback is the host's own address, not LAYOVER_ADVERTISE: in a fleet that is the service in front of every replica.
  const peerAddress = parsePeerAddress(r.peerAddress, cacheIndex, r.https.port, () => machine.advertise()[0]!);
  if (typeof peerAddress === 'string') throw new ConfigError(`${labels.get('peerAddress')}: ${peerAddress}`);
  if (r.blobRedirect === 'presigned' && blobStore.kind !== 's3') throw new ConfigError(`${labels.get('blobRedirect')}: presigned needs BLOB_STORE=s3://…`);

  // A bad entry would otherwise fail its image in every round, unnoticed but in a log line.
  for (const image of r.prefetch) {
    try {
      parseImageReference(image);
    } catch (error) {
      throw new ConfigError(`${labels.get('prefetch')}: ${(error as Error).message}`);
    }
  }

  const tiers: ManifestTier[] = [];
  if (r.manifestCachePrimaryRegex) tiers.push({ pattern: r.manifestCachePrimaryRegex, ttlMs: r.manifestCachePrimaryTime });
  if (r.manifestCacheSecondaryRegex) tiers.push({ pattern: r.manifestCacheSecondaryRegex, ttlMs: r.manifestCacheSecondaryTime });

  const dataDir = resolve(r.dataDir);
  return deepFreeze({
    configFile: filePath ?? null,
    dataDir,
    caDir: r.caDir !== undefined ? resolve(r.caDir) : join(dataDir, 'ca'),
    listen: { https: r.https, http: r.http, dns: r.dns, proxy: r.proxy },
    connectPolicy: r.connectPolicy,
    connectAllowNetworks: r.connectAllowNetworks ?? r.dnsAllowRecursion ?? machine.recursionNetworks(),
    customDomains,
    http2: r.http2,
    advertise: r.advertise ?? machine.advertise(),
    upstreamDns: r.upstreamDns ?? machine.upstreamDns(),
    upstreamCa: r.upstreamCa !== undefined ? resolve(r.upstreamCa) : null,
    verifyUpstreamTls: r.verifySsl,
    logLevel: r.logLevel,
    logFormat: r.logFormat,
    admin: {
      listen: r.adminListen,
      allowNetworks: r.adminAllowNetworks,
      tokenFile: resolve(r.adminTokenFile ?? join(dataDir, ADMIN_TOKEN_FILE)),
      group: r.adminGroup,
      hostnames: r.adminHostnames,
      metrics: r.metrics,
    },
    dockerHubBudgetLow: r.dockerHubBudgetLow,
    prefetch: { images: r.prefetch, intervalMs: r.prefetchInterval, referrers: r.prefetchReferrers },
    // Custom domains are intercepted names too: DNS answers them and TLS serves a certificate for them.
    registries: [...new Set([...r.registries.map((pattern) => pattern.split(':')[0]!), ...DOCKER_HUB_HOSTS, DOCKER_PROXY_HOST, ...customDomains.map((d) => d.domain)])],
    registryPatterns: [...r.registries],
    registryPorts: [...new Set(r.registries.filter((pattern) => pattern.includes(':')).map((pattern) => Number(pattern.split(':')[1])))],
    credentials,
    cacheMaxSize: r.cacheMaxSize,
    blobStore,
    blobRedirect: r.blobRedirect,
    cacheIndex,
    peerAddress,
    manifestCache: { enabled: r.enableManifestCache, tiers, defaultTtlMs: r.manifestCacheDefaultTime },
    allowPush: r.allowPush,
    clientAuth,
    accessChecks: { ttlMs: r.accessCheckTtl, anonymousTtlMs: r.anonymousAccessTtl, failOpen: r.accessCheckFailOpen },
    redirects: { mode: r.redirects, allowNetworks: r.redirectAllowNetworks, keyFile: resolve(r.redirectKeyFile ?? join(dataDir, REDIRECT_KEY_FILE)) },
    connections: { maxPerListener: r.maxConnections, maxPerClient: r.maxConnectionsPerClient, tlsHandshakeMs: r.tlsHandshakeTimeout },
    dnsPolicy: {
      allowRecursion: r.dnsAllowRecursion ?? machine.recursionNetworks(),
      rateLimit: r.dnsRateLimit,
      rateLimitExempt: r.dnsRateLimitExempt ?? machine.ownNetworks(),
      rateLimitSlip: r.dnsRateLimitSlip,
      tcpQueryMs: r.dnsTcpQueryTimeout,
      tcpMaxPerClient: r.dnsTcpMaxPerClient,
    },
    dnsUdpWorkers: r.dnsUdpWorkers,
    timeouts: {
      proxyConnectMs: r.proxyConnectTimeout,
      proxyReadMs: r.proxyReadTimeout,
      proxySendMs: r.proxySendTimeout,
      sendMs: r.sendTimeout,
      clientBodyMs: r.clientBodyTimeout,
      clientHeaderMs: r.clientHeaderTimeout,
      keepaliveMs: r.keepaliveTimeout,
      shutdownGraceMs: r.shutdownGrace,
      shutdownDrainMs: drainWithin(r, labels),
    },
  });
}
