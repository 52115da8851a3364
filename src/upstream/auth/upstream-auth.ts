import type { Metrics } from '../../metrics/metrics.js';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { request, type Dispatcher } from 'undici';
import type { RegistryCredential } from '../../config/credentials.js';
import { OciError } from '../../registry/oci-errors.js';
import type { RepositoryName } from '../../registry/repository-name.js';
import { LruMap } from '../../tls/lru-map.js';
import { UpstreamAuthError } from './auth-error.js';
import { type Challenge, formatChallenge, parseChallenges, preferredChallenge } from './challenge.js';
import { CredentialHelperError, type HelperRunner, type ResolvedCredential } from './credential-helper.js';
import { CredentialStore, credentialName } from './credential-store.js';
import { RealmGuard } from './realm-guard.js';
import { hostOnly, sameSite } from './realm-policy.js';
import { basicAuthorization, discoverChallenge, fetchToken, readBounded } from './token-client.js';
import { type SharedTokenStore, TokenCache } from './token-cache.js';
import { UpstreamDispatcher } from '../upstream-agent.js';
import { originHost } from '../origin-host.js';

/** Layover's token endpoint on every intercepted registry name; Bearer challenges point clients here (see rewriteChallenges). */
export const TOKEN_ENDPOINT_PATH = '/_layover/token';
/** What that endpoint hands a client without credentials: "use Layover's". Never sent upstream. */
export const PLACEHOLDER_TOKEN = 'layover.configured-credentials';
const PLACEHOLDER_LIFETIME_S = 3600;
/** How long a registry's auth scheme is trusted before the next ping asks again. */
const DISCOVERY_TTL_MS = 15 * 60_000;

type Log = Pick<FastifyBaseLogger, 'warn' | 'info' | 'debug'>;

/** What a request is for: the token scope Layover asks for. */
export interface AuthScope {
  readonly auth: UpstreamAuth;
  readonly repository: RepositoryName | null;
  readonly action: 'pull' | 'push';
  /**
   * The `/v2/` ping: never authenticated by Layover, so clients learn the registry's challenge
   * and those with credentials of their own use them (a 200 would tell them none are needed).
   */
  readonly ping?: true;
}

/** How one upstream request is authorized. */
export interface AuthGrant {
  /** The Authorization Layover sends instead of the client's; undefined: none of ours. */
  readonly header?: string;
  /** The client's Authorization must not go upstream (empty Basic, Layover's placeholder token). */
  readonly dropClientHeader: boolean;
  /** The client brought its own credentials: they go upstream untouched. */
  readonly clientOwn: boolean;
  /** The upstream's challenge reaches the client as an answer, not as an error (the ping). */
  readonly passChallenge?: boolean;
  /** Name of the configured credential used, for logs (never its secret). */
  readonly credential?: string;
  readonly challenge: Challenge | null;
  readonly token?: { readonly key: string; readonly value: string };
  readonly used?: { readonly entry: RegistryCredential; readonly resolved: ResolvedCredential };
}

const CLIENT_OWN: AuthGrant = { dropClientHeader: false, clientOwn: true, challenge: null };

/** The client sends the placeholder Layover's token endpoint gave it: "authorize me with yours". */
export function handsBackPlaceholder(authorization: string | undefined): boolean {
  const [scheme = '', value = ''] = (authorization ?? '').trim().split(/\s+/, 2);
  return scheme.toLowerCase() === 'bearer' && value === PLACEHOLDER_TOKEN;
}

/** `Basic Og==` (empty user and password) and Layover's placeholder mean "no credentials of my own". */
export function clientBringsCredentials(authorization: string | undefined): boolean {
  if (!authorization?.trim()) return false;
  const [scheme = '', value = ''] = authorization.trim().split(/\s+/, 2);
  if (scheme.toLowerCase() === 'bearer' && value === PLACEHOLDER_TOKEN) return false;
  if (scheme.toLowerCase() === 'basic' && Buffer.from(value, 'base64').toString('utf8') === ':') return false;
  return true;
}

/**
 * Upstream credentials. For a request whose client sent none, Layover authenticates itself:
 * Basic with the configured credential, or the bearer-token flow (challenge from a `/v2/` ping,
 * token from the realm with the credential, cached per registry, scope and account, one fetch at
 * a time). A client's own Authorization is never replaced. Credentials go to the registry they
 * belong to and to its token realm only when that realm is on the registry's registrable domain,
 * is the host the entry is keyed by, or is the entry's configured `realm`.
 *
 * A realm is the upstream's to choose, like a redirect's Location: Layover (for its own tokens and
 * for the relay) fetches only https realms, and reaches one through the RealmGuard (addresses the
 * AddressPolicy allows) unless it is the registry's own origin or host at 443, or a credential's
 * configured `realm`.
 */
export class UpstreamAuth {
  readonly #dispatcher: Dispatcher;
  readonly #store: CredentialStore;
  readonly #tokens: TokenCache;
  readonly #logger: Log;
  readonly #now: () => number;
  readonly #discovered = new LruMap<string, { challenge: Challenge | null; at: number }>(1000);
  readonly #discovering = new Map<string, Promise<Challenge | null>>();
  readonly #warned = new LruMap<string, true>(1000);
  readonly #realms: RealmGuard;
  readonly #metrics: Metrics | undefined;
  readonly #realmHidden: (hostname: string, port: number | null) => boolean;

  /** `realms`: where realms on other hosts are reached through; by default the UpstreamDispatcher's guard. */
  constructor(options: {
    dispatcher: Dispatcher;
    realms?: RealmGuard;
    credentials: readonly RegistryCredential[];
    logger: Log;
    runHelper?: HelperRunner;
    now?: () => number;
    /** Replicas of a shared index: bearer tokens sealed in the index's records, so one fetched by any replica serves all. */
    sharedTokens?: SharedTokenStore;
    /** Counts tokens fetched from token services. */
    metrics?: Metrics;
    /** Hostnames Layover proxies as registries (REGISTRIES): their credentials never serve another registry through its realm. */
    isRegistry?: (hostname: string) => boolean;
    /** Hostnames proxied only through a wildcard of REGISTRIES: they never borrow an entry keyed by their realm's host. */
    wildcardOnly?: (hostname: string) => boolean;
    /** Realms clients resolving through Layover cannot reach (registry-hosts.ts realmHiddenByDns): see namesHiddenRealm. */
    realmHidden?: (hostname: string, port: number | null) => boolean;
  }) {
    this.#dispatcher = options.dispatcher;
    const realms = options.realms ?? (options.dispatcher instanceof UpstreamDispatcher ? options.dispatcher.realms : null);
    if (!realms) throw new TypeError('UpstreamAuth needs a RealmGuard: pass `realms`, or the UpstreamDispatcher as `dispatcher`');
    this.#realms = realms;
    this.#now = options.now ?? Date.now;
    this.#store = new CredentialStore(options.credentials, {
      ...(options.runHelper ? { runHelper: options.runHelper } : {}),
      ...(options.isRegistry ? { isRegistry: options.isRegistry } : {}),
      ...(options.wildcardOnly ? { wildcardOnly: options.wildcardOnly } : {}),
      now: this.#now,
    });
    this.#tokens = new TokenCache({ now: this.#now, ...(options.sharedTokens ? { shared: options.sharedTokens } : {}) });
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#realmHidden = options.realmHidden ?? (() => false);
  }

  /** The scope of a request, for forwardUpstream's `auth` option. */
  for(repository: RepositoryName | null | undefined, action: 'pull' | 'push' = 'pull'): AuthScope {
    return { auth: this, repository: repository ?? null, action };
  }

  /** The scope of the `/v2/` ping. */
  forPing(): AuthScope {
    return { auth: this, repository: null, action: 'pull', ping: true };
  }

  /** False when no configured credential can concern `origin` (whether Layover authorizes a request: src/proxy/layover-authorizes.ts). */
  concerns(origin: string): boolean {
    return this.#store.covers(originHost(origin));
  }

  /** The grant for one request to `origin`: for requests Layover authorizes (src/proxy/layover-authorizes.ts). */
  async authorize(origin: string, scope: AuthScope, clientAuthorization: string | undefined, log: Log = this.#logger): Promise<AuthGrant> {
    if (clientBringsCredentials(clientAuthorization)) return scope.ping ? { ...CLIENT_OWN, passChallenge: true } : CLIENT_OWN;
    const dropClientHeader = clientAuthorization !== undefined;
    if (scope.ping) return { dropClientHeader, clientOwn: false, challenge: null, passChallenge: true };
    const challenge = await this.#discover(origin);
    const registry = originHost(origin);
    if (!challenge) return { dropClientHeader, clientOwn: false, challenge };
    const realm = challenge.scheme === 'bearer' ? realmOf(challenge) : null;
    const entry = this.#store.select(registry, scope.repository, realm?.host ?? null);

    if (challenge.scheme === 'basic') {
      if (!entry) return { dropClientHeader, clientOwn: false, challenge };
      const resolved = await this.#resolve(entry, registry);
      return { header: basicAuthorization(resolved.username, resolved.password), dropClientHeader, clientOwn: false, credential: credentialName(entry), challenge, used: { entry, resolved } };
    }
    if (!realm) return { dropClientHeader, clientOwn: false, challenge };
    const allowed = entry && this.#mayReceive(entry, realm, registry, log) ? entry : null;
    const tokenScope = scope.repository ? `repository:${scope.repository}:${scope.action === 'push' ? 'pull,push' : 'pull'}` : undefined;
    const service = challenge.params.service;
    const key = [origin, realm.href, service ?? '', tokenScope ?? '', allowed ? credentialName(allowed) : ''].join('|');
    // The token endpoint checks the credential (and asks a helper again if it refuses): a
    // registry's 401 to a token means the token is stale, so `used` stays unset.
    const value = await this.#tokens.get(key, () => this.#fetchToken(origin, realm, service, tokenScope, allowed, log));
    return { header: `Bearer ${value}`, dropClientHeader, clientOwn: false, ...(allowed ? { credential: credentialName(allowed) } : {}), challenge, token: { key, value } };
  }

  /**
   * A token without credentials from the realm a challenge of `origin` named, as a client without any
   * would get one: fetched under the same policy as Layover's own tokens (https only, any realm but
   * the registry's own or a configured one through the RealmGuard), since the realm is the upstream's
   * to name. A refused realm ends in an UpstreamAuthError `refused`.
   */
  anonymousToken(origin: string, realm: URL, service: string | undefined, scope: string, log: Log = this.#logger): Promise<string> {
    return this.#viaRealm(origin, realm, log, async (dispatcher) => (await fetchToken(dispatcher, { realm, ...(service ? { service } : {}), scope })).token);
  }

  /**
   * The upstream answered 401 to a request sent with `grant`. Forgets what may be stale (the
   * token, a helper's answer, the registry's scheme if the challenge changed) and returns true
   * when one retry with fresh authorization may succeed.
   */
  rejected(origin: string, grant: AuthGrant, wwwAuthenticate: string | string[] | undefined): boolean {
    if (grant.clientOwn || grant.passChallenge) return false;
    let retry = false;
    const seen = preferredChallenge(parseChallenges(wwwAuthenticate));
    if (seen && !sameChallenge(seen, grant.challenge)) {
      this.#discovered.set(origin, { challenge: seen, at: this.#now() });
      retry = true;
    }
    if (grant.token) {
      this.#tokens.invalidate(grant.token.key, grant.token.value);
      retry = true;
    }
    if (grant.used && this.#store.invalidate(grant.used.entry, grant.used.resolved)) retry = true;
    return retry;
  }

  /**
   * Bearer challenges in an answer to a client, with the realm pointing at Layover's token
   * endpoint on the name the client used (`publicOrigin`, or the whole `realm` where the client
   * reached the registry through a mirror or a custom domain): clients with credentials get a real
   * token through it, clients without get the placeholder and Layover's own authorization.
   * `scope` renames the challenge's scope for clients that know the repository by another name.
   * Several challenges stay several header values: Docker's parser reads one challenge per value.
   */
  rewriteChallenges(header: string | string[], publicOrigin: string | { realm: string; scope?: (scope: string) => string }): string | string[] {
    const realm = typeof publicOrigin === 'string' ? `${publicOrigin}${TOKEN_ENDPOINT_PATH}` : publicOrigin.realm;
    const renameScope = typeof publicOrigin === 'string' ? undefined : publicOrigin.scope;
    const challenges = parseChallenges(header).map((c) => {
      if (c.scheme !== 'bearer' || !c.params.realm) return formatChallenge(c);
      const params: Record<string, string> = { ...c.params, realm };
      if (renameScope && params.scope !== undefined) {
        const scope = renameScope(params.scope);
        if (scope) params.scope = scope;
        else delete params.scope;
      }
      return formatChallenge({ ...c, params });
    });
    return challenges.length > 1 ? challenges : (challenges[0] ?? '');
  }

  /**
   * True when a Bearer challenge of the registry at `origin` names a realm on the registry's own host
   * at 443 that clients resolving through Layover cannot reach (a self-hosted GitLab's beside its
   * registry on 5050): the challenges must then point at Layover's token endpoint (rewriteChallenges),
   * even for a registry Layover holds no credential for, and Layover reaches that realm as it reaches
   * the registry. Realms on other hosts are left to the client: Layover might not be let reach them.
   */
  namesHiddenRealm(origin: string, header: string | string[]): boolean {
    return parseChallenges(header).some((c) => {
      const realm = c.scheme === 'bearer' ? realmOf(c) : null;
      return realm !== null && realm.protocol === 'https:' && ownRealm(realm, origin) && this.#realmHidden(realm.hostname, realm.port === '' ? null : Number(realm.port));
    });
  }

  /**
   * Layover's token endpoint for `origin`. A client with credentials of its own (Basic, or a
   * POST with an OAuth2 form) is relayed to the registry's real realm and gets the realm's
   * answer; a client without gets the placeholder token, which makes Layover authorize its
   * requests itself.
   */
  async tokenEndpoint(
    origin: string,
    req: { method: string; query: string; authorization?: string; contentType?: string; body?: Readable },
    log: Log = this.#logger,
  ): Promise<{ status: number; contentType: string; body: string | Buffer }> {
    const challenge = await this.#discover(origin);
    const realm = challenge?.scheme === 'bearer' ? realmOf(challenge) : null;
    if (!realm) throw new OciError('NOT_FOUND', `${new URL(origin).host} uses no token authentication`);
    if (req.method === 'GET' && !clientBringsCredentials(req.authorization)) {
      const body = { token: PLACEHOLDER_TOKEN, access_token: PLACEHOLDER_TOKEN, expires_in: PLACEHOLDER_LIFETIME_S, issued_at: new Date(this.#now()).toISOString() };
      return { status: 200, contentType: 'application/json', body: JSON.stringify(body) };
    }
    const url = new URL(realm);
    for (const [name, value] of new URLSearchParams(req.query)) url.searchParams.append(name, value);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'layover' };
    if (req.authorization) headers.authorization = req.authorization;
    if (req.contentType) headers['content-type'] = req.contentType;
    return this.#viaRealm(origin, url, log, async (dispatcher) => {
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { dispatcher, method: req.method === 'POST' ? 'POST' : 'GET', headers, ...(req.method === 'POST' && req.body ? { body: req.body } : {}) });
      } catch (error) {
        if (error instanceof UpstreamAuthError) throw error; // a guarded realm's refusal
        throw new UpstreamAuthError('unreachable', `token endpoint ${url.host} is unreachable`, undefined, { cause: error });
      }
      const body = await readBounded(res.body);
      if (!body) throw new UpstreamAuthError('invalid', `token endpoint ${url.host} answered too much`);
      const type = res.headers['content-type'];
      return { status: res.statusCode, contentType: typeof type === 'string' ? type : 'application/json', body };
    });
  }

  /**
   * Runs `use` with the dispatcher a request to `realm` (of the registry at `origin`) may take: the
   * upstream dispatcher for the registry's own origin, its own host at 443 (a self-hosted GitLab's
   * realm beside its registry on 5050, both on a private address; other ports of the host stay
   * guarded, or a registry could have Layover read any service beside it) and for a credential's
   * configured `realm`, the RealmGuard's for any other https realm. A realm refused is logged (the
   * registry and the realm's host, nothing else) and ends in an UpstreamAuthError `refused`.
   */
  async #viaRealm<T>(origin: string, realm: URL, log: Log, use: (dispatcher: Dispatcher) => Promise<T>): Promise<T> {
    const registry = originHost(origin);
    try {
      if (realm.protocol !== 'https:') throw new UpstreamAuthError('refused', `token realm ${realm.host} is not https`);
      if (realm.username || realm.password) throw new UpstreamAuthError('refused', `token realm ${realm.host} has credentials in its URL`);
      if (ownRealm(realm, origin) || this.#store.configuresRealm(registry, realm.hostname)) return await use(this.#dispatcher);
      return await this.#realms.use(realm, use);
    } catch (error) {
      if (error instanceof UpstreamAuthError && error.kind === 'refused') {
        log.warn({ registry, realm: realm.host }, `refused the token realm the registry named: ${error.message}`);
        throw new UpstreamAuthError('refused', `Layover does not fetch the token realm ${registry} names: ${error.message}`, undefined, { cause: error });
      }
      throw error;
    }
  }

  #discover(origin: string): Promise<Challenge | null> {
    const known = this.#discovered.get(origin);
    if (known && this.#now() - known.at < DISCOVERY_TTL_MS) return Promise.resolve(known.challenge);
    let pending = this.#discovering.get(origin);
    if (!pending) {
      pending = discoverChallenge(this.#dispatcher, origin)
        .then(({ challenge, settled }) => {
          // A failing ping (5xx) says nothing: ask again next time.
          if (settled) this.#discovered.set(origin, { challenge, at: this.#now() });
          return challenge;
        })
        .finally(() => this.#discovering.delete(origin));
      this.#discovering.set(origin, pending);
    }
    return pending;
  }

  async #resolve(entry: RegistryCredential, registry: string): Promise<ResolvedCredential> {
    try {
      return await this.#store.resolve(entry);
    } catch (error) {
      if (error instanceof CredentialHelperError) {
        throw new UpstreamAuthError('helper', `no credentials for ${registry}: ${error.message} (credential ${credentialName(entry)})`, undefined, { cause: error });
      }
      throw error;
    }
  }

  /** One token fetch; a helper credential the endpoint refuses is asked for again once. */
  async #fetchToken(origin: string, realm: URL, service: string | undefined, scope: string | undefined, entry: RegistryCredential | null, log: Log) {
    const registry = originHost(origin);
    for (let attempt = 0; ; attempt++) {
      const resolved = entry ? await this.#resolve(entry, registry) : undefined;
      try {
        const request = { realm, ...(service ? { service } : {}), ...(scope ? { scope } : {}), ...(resolved ? { credential: resolved } : {}) };
        const token = await this.#viaRealm(origin, realm, log, (dispatcher) => fetchToken(dispatcher, request));
        log.debug({ registry, realm: realm.host, scope, credential: entry ? credentialName(entry) : 'anonymous' }, 'fetched an upstream token');
        this.#metrics?.upstreamTokens.inc({ registry: this.#metrics.registryLabel(registry) });
        return token;
      } catch (error) {
        if (error instanceof UpstreamAuthError && error.kind === 'rejected' && entry && resolved) {
          log.warn({ registry, realm: realm.host, status: error.status, credential: credentialName(entry) }, 'token endpoint refused the configured credential');
          if (attempt === 0 && this.#store.invalidate(entry, resolved)) continue;
          throw new UpstreamAuthError('rejected', `${registry}: the token endpoint ${realm.host} refused the credential ${credentialName(entry)}`, error.status, { cause: error });
        }
        throw error;
      }
    }
  }

  #mayReceive(entry: RegistryCredential, realm: URL, registry: string, log: Log): boolean {
    const realmHost = realm.hostname.toLowerCase();
    const ok =
      realm.protocol === 'https:' &&
      (sameSite(realmHost, registry) || realmHost === hostOnly(entry.registry) || realmHost === entry.realm);
    if (!ok && !this.#warned.get(`${registry}|${realm.host}`)) {
      this.#warned.set(`${registry}|${realm.host}`, true);
      log.warn(
        { registry, realm: realm.host, credential: credentialName(entry) },
        'not sending the credential to a token realm on another domain (set `realm` on the entry to allow it): asking for an anonymous token',
      );
    }
    return ok;
  }
}

/** A realm at the registry's own origin, or on its host at 443 (`realm` is https). */
function ownRealm(realm: URL, origin: string): boolean {
  const registry = new URL(origin);
  return realm.hostname === registry.hostname && (realm.port === registry.port || realm.port === '');
}

function realmOf(challenge: Challenge): URL | null {
  try {
    const url = new URL(challenge.params.realm ?? '');
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

function sameChallenge(a: Challenge, b: Challenge | null): boolean {
  return b !== null && a.scheme === b.scheme && a.params.realm === b.params.realm && a.params.service === b.params.service;
}
