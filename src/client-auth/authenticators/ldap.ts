import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client, ResultCodeError } from 'ldapts';
import type { Logger } from 'pino';
import type { LayoverConfig } from '../../config/layover-config.js';
import { OciError } from '../../registry/oci-errors.js';
import { LruMap } from '../../tls/lru-map.js';
import type { Authenticator, ClientIdentity, TokenLifetime } from '../authenticator.js';
import { parseBasic } from '../authenticator.js';
import { escapeDnValue, escapeFilterValue, fillTemplate } from './ldap-escape.js';
import { MIN_LIFETIME_S } from '../token-service/layover-tokens.js';
import { RememberedCredentials } from './remembered.js';
import { FairTurns } from './fair-turns.js';

export type LdapSettings = NonNullable<LayoverConfig['clientAuth']['ldap']>;

/** One whole check (connect, TLS, binds, searches) gets this long before the client gets 503. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** More groups than anyone is in: the rest are not read. */
const MAX_GROUPS = 1_000;
/** Directory connections at once: a burst of sign-ins (many new users, guesses from many addresses) takes turns. */
export const MAX_LDAP_CONNECTIONS = 16;
/** Checks waiting for a connection, each for the timeout at most; past it a check is answered 503 at once unless a client with more waiting gives up its newest. */
export const MAX_LDAP_WAITING = 64;

export interface LdapOptions {
  settings: LdapSettings;
  logger: Logger;
  /** How long a success is remembered (CLIENT_AUTH_CACHE_TTL). */
  rememberMs: number;
  timeoutMs?: number;
}

/** A failure of the directory, not of the client's credentials: the client gets 503 and tries again. */
function unavailable(step: string, cause: unknown): OciError {
  return new OciError('UNAVAILABLE', `the LDAP directory cannot check credentials now (${step})`, undefined, { cause });
}

/**
 * `CLIENT_AUTH=ldap`: Basic credentials checked by binding to an LDAP directory
 * as the user. The user's DN comes from LDAP_USER_DN (`uid={user},ou=people,…`),
 * or from a search under LDAP_SEARCH_BASE with LDAP_SEARCH_FILTER that must
 * find exactly one entry, made as LDAP_BIND_DN (or anonymously). Groups are the
 * `cn` of every entry under LDAP_GROUP_BASE that LDAP_GROUP_FILTER matches
 * (`{dn}` the user's DN, `{user}` the name), read as LDAP_BIND_DN when there is
 * one, else as the user. User input is escaped for DNs and filters
 * (./ldap-escape.ts).
 *
 * An empty password is refused before anything is sent: to LDAP a DN with an
 * empty password is an "unauthenticated bind" (RFC 4513 5.1.2), which servers
 * that allow it answer with success for any DN. A directory that cannot be
 * reached, or answers too slowly, or whose TLS certificate is not trusted, is
 * a 503 UNAVAILABLE, never a 401; the password is sent only after StartTLS
 * succeeded when LDAP_STARTTLS is on. Successes are remembered (./remembered.ts).
 */
export class LdapAuthenticator implements Authenticator {
  readonly #settings: LdapSettings;
  readonly #logger: Logger;
  readonly #remembered: RememberedCredentials;
  readonly #timeoutMs: number;
  /** stillValid's look-ups under way, by user. */
  readonly #lookingUp = new Map<string, Promise<boolean>>();
  /** Directory connections, taken in turns by client. */
  readonly #turns = new FairTurns(MAX_LDAP_CONNECTIONS, MAX_LDAP_WAITING, () => unavailable('too many checks at once', new Error('no directory connection free')));
  readonly #tls: ConnectionOptions;
  readonly #rememberMs: number;
  /** Users found in the directory lately (stillValid), until when: bounded, checked again after CLIENT_AUTH_CACHE_TTL. */
  readonly #present = new LruMap<string, number>(10_000);
  #warnedBlind = false;

  private constructor(options: LdapOptions, ca: string | undefined) {
    this.#settings = options.settings;
    this.#logger = options.logger;
    this.#remembered = new RememberedCredentials({ ttlMs: options.rememberMs });
    this.#rememberMs = options.rememberMs;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const host = new URL(options.settings.url).hostname.replace(/^\[|\]$/g, '');
    // StartTLS upgrades an open socket: the name to check the certificate against must be given.
    this.#tls = { ...(ca === undefined ? {} : { ca }), host, ...(isIP(host) ? {} : { servername: host }) };
  }

  /** Reads LDAP_CA; warns when passwords would cross the network in clear text. */
  static async open(options: LdapOptions): Promise<LdapAuthenticator> {
    const { settings, logger } = options;
    const ca = settings.ca === null ? undefined : await readFile(settings.ca, 'utf8');
    if (settings.url.startsWith('ldap://') && !settings.startTls) {
      logger.warn({ ldap: settings.url }, 'LDAP without TLS: client passwords cross the network in clear text (use ldaps:// or LDAP_STARTTLS)');
    }
    if (settings.bindDn === null) {
      logger.warn(
        { ldap: settings.url },
        'LDAP without LDAP_BIND_DN: Layover cannot look users up unless the directory allows it anonymously, so its tokens (CLIENT_AUTH_CHALLENGE=bearer) last no longer than CLIENT_AUTH_CACHE_TTL and longer ones are refused unless the directory confirms their user (set LDAP_BIND_DN to keep CLIENT_TOKEN_TTL)',
      );
    }
    return new LdapAuthenticator(options, ca);
  }

  authenticate(authorization: string | undefined, source = ''): Promise<ClientIdentity | null> {
    const basic = parseBasic(authorization);
    return basic ? this.check(basic.user, basic.password, source) : Promise.resolve(null);
  }

  /** One user name and password; null when they are not valid. `source`: who signs in (signInSource), for turns. */
  check(user: string, password: string, source = ''): Promise<ClientIdentity | null> {
    if (user === '' || password === '') return Promise.resolve(null);
    return this.#remembered.check(user, password, () => this.#withClient(source, (client) => this.#verify(client, user, password)));
  }

  /**
   * While the user's entry is in the directory (LDAP_USER_DN), or the search still finds exactly
   * one (LDAP_SEARCH_FILTER: a filter that leaves out disabled accounts disables them here too);
   * asked at most once per CLIENT_AUTH_CACHE_TTL per user, and not within that time of a
   * successful bind as the user (that bind found the entry). Fails closed: a directory that does
   * not let Layover look the user up (no LDAP_BIND_DN, anonymous reads refused) confirms nobody.
   * Without LDAP_BIND_DN the token service issues tokens no longer than CLIENT_AUTH_CACHE_TTL
   * (create-client-auth.ts): such a token ends before a remembered password would be checked
   * again, so it needs no look-up, on this replica or any other.
   */
  async stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    if (this.#settings.bindDn === null && token && token.expiresAt - token.issuedAt <= Math.max(this.#rememberMs / 1000, MIN_LIFETIME_S)) return true;
    const until = this.#present.get(user);
    if (until !== undefined && until > Date.now()) return true;
    // One look-up for the requests of one user at once; in the directory's turns, each user as a client of its own.
    let looking = this.#lookingUp.get(user);
    if (!looking) {
      looking = this.#withClient(`user:${user}`, (client) => this.#findEntry(client, user)).finally(() => this.#lookingUp.delete(user));
      this.#lookingUp.set(user, looking);
    }
    const found = await looking;
    if (found) this.#present.set(user, Date.now() + this.#rememberMs);
    else this.#present.delete(user);
    return found;
  }

  async #findEntry(client: Client, user: string): Promise<boolean> {
    const settings = this.#settings;
    if (settings.startTls && settings.url.startsWith('ldap://')) await step('StartTLS', () => client.startTLS({ ...this.#tls }));
    await this.#bindService(client);
    try {
      const search =
        settings.userDn !== null
          ? await client.search(fillTemplate(settings.userDn, { user }, escapeDnValue), { scope: 'base', attributes: ['1.1'] })
          : await client.search(settings.searchBase!, { scope: 'sub', filter: fillTemplate(settings.searchFilter, { user }, escapeFilterValue), attributes: ['1.1'], sizeLimit: 2 });
      return search.searchEntries.length === 1;
    } catch (error) {
      // No such object: the entry is gone. Anything else is the directory's trouble.
      if (error instanceof ResultCodeError && error.code === NO_SUCH_OBJECT) return false;
      // Not allowed to read the entry (anonymously, without LDAP_BIND_DN): it cannot be told from
      // a removed one, so the token is refused; the operator is told once.
      if (error instanceof ResultCodeError && error.code === INSUFFICIENT_ACCESS) {
        if (!this.#warnedBlind) {
          this.#warnedBlind = true;
          this.#logger.warn({ ldap: settings.url }, 'LDAP: the directory does not let Layover look users up; a token of Layover\'s that outlives CLIENT_AUTH_CACHE_TTL is refused unless its user logged in within it (set LDAP_BIND_DN)');
        }
        return false;
      }
      throw unavailable('user lookup', error);
    }
  }

  async #verify(client: Client, user: string, password: string): Promise<ClientIdentity | null> {
    const settings = this.#settings;
    if (settings.startTls && settings.url.startsWith('ldap://')) await step('StartTLS', () => client.startTLS({ ...this.#tls }));
    let dn: string;
    if (settings.userDn !== null) {
      dn = fillTemplate(settings.userDn, { user }, escapeDnValue);
    } else {
      await this.#bindService(client);
      const filter = fillTemplate(settings.searchFilter, { user }, escapeFilterValue);
      const { searchEntries } = await step('user search', () => client.search(settings.searchBase!, { scope: 'sub', filter, attributes: ['1.1'], sizeLimit: 2 }));
      if (searchEntries.length !== 1) {
        this.#logger.info({ ldapUser: user, entries: searchEntries.length }, 'LDAP: the user search did not find exactly one entry');
        return null;
      }
      dn = searchEntries[0]!.dn;
    }
    try {
      await client.bind(dn, password);
    } catch (error) {
      // Wrong password, unknown DN, locked account: the directory's answer about these credentials.
      if (error instanceof ResultCodeError) {
        this.#logger.info({ ldapUser: user, ldapResult: error.code }, 'LDAP: the bind as the user was refused');
        return null;
      }
      throw unavailable('bind', error);
    }
    const groups = settings.groupBase === null ? [] : await this.#groups(client, dn, user);
    this.#present.set(user, Date.now() + this.#rememberMs);
    return Object.freeze({ user, groups: Object.freeze(groups) });
  }

  async #bindService(client: Client): Promise<void> {
    const { bindDn, bindPassword } = this.#settings;
    if (bindDn !== null && bindPassword !== null) await step('bind as LDAP_BIND_DN', () => client.bind(bindDn, bindPassword.reveal()));
  }

  async #groups(client: Client, dn: string, user: string): Promise<string[]> {
    await this.#bindService(client);
    const filter = fillTemplate(this.#settings.groupFilter, { dn, user }, escapeFilterValue);
    const { searchEntries } = await step('group search', () => client.search(this.#settings.groupBase!, { scope: 'sub', filter, attributes: ['cn'], sizeLimit: MAX_GROUPS }));
    const names = searchEntries.flatMap((entry) => {
      const cn = entry.cn;
      const first = Array.isArray(cn) ? cn[0] : cn;
      return typeof first === 'string' && first !== '' ? [first] : [];
    });
    return [...new Set(names)];
  }

  /**
   * A connection for one check, closed after it, once `source` has its turn (FairTurns: at most
   * MAX_LDAP_CONNECTIONS open, MAX_LDAP_WAITING waiting, sources taking turns); the wait and the
   * check are each bounded by the timeout.
   */
  #withClient<T>(source: string, work: (client: Client) => Promise<T>): Promise<T> {
    return this.#turns.run(source, this.#timeoutMs, () => this.#connected(work));
  }

  async #connected<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({
      url: this.#settings.url,
      timeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs,
      // ldapts speaks TLS from the first byte whenever tlsOptions are given: only for ldaps://.
      ...(this.#settings.url.startsWith('ldaps://') ? { tlsOptions: { ...this.#tls } } : {}),
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(unavailable('timed out', new Error(`no answer within ${this.#timeoutMs} ms`))), this.#timeoutMs);
    });
    try {
      return await Promise.race([work(client), deadline]);
    } catch (error) {
      const failure = error instanceof OciError ? error : unavailable('connection', error);
      this.#logger.warn({ ldap: this.#settings.url, err: failure.cause }, failure.message);
      throw failure;
    } finally {
      clearTimeout(timer);
      // Not awaited: on a stalled connection the unbind itself would wait for the timeout.
      void client.unbind().catch(() => undefined);
    }
  }
}

/** LDAP result codes: the DN names no entry; the bound identity may not read it. */
const NO_SUCH_OBJECT = 32;
const INSUFFICIENT_ACCESS = 50;

/** Runs one directory operation; any failure of it is the directory's, not the client's. */
async function step<T>(name: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw unavailable(name, error);
  }
}
