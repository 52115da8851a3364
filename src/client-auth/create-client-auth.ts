import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { LayoverConfig } from '../config/layover-config.js';
import { AccessPolicy } from './access-policy.js';
import type { Authenticator, ClientIdentity, TokenLifetime } from './authenticator.js';
import { NoAuthenticator } from './authenticators/none.js';
import { StaticTokenAuthenticator } from './authenticators/static-tokens.js';
import { SignInThrottle } from './sign-in-throttle.js';
import type { LayoverTokens } from './token-service/layover-tokens.js';

/** What the proxy needs to check clients: null when authentication is off. */
export interface ClientAuth {
  readonly mode: Exclude<LayoverConfig['clientAuth']['mode'], 'none'>;
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  /** Layover's token service and the tokens it issues: set with CLIENT_AUTH_CHALLENGE=bearer. */
  readonly tokens: LayoverTokens | null;
}

/** Adds the config file's `clientGroups` to whatever groups the authenticator found. */
class WithGroups implements Authenticator {
  constructor(
    readonly inner: Authenticator,
    readonly groups: Readonly<Record<string, readonly string[]>>,
  ) {}

  async authenticate(authorization: string | undefined, source?: string): Promise<ClientIdentity | null> {
    const identity = await this.inner.authenticate(authorization, source);
    if (!identity) return null;
    const extra = Object.entries(this.groups)
      .filter(([, users]) => users.includes(identity.user))
      .map(([group]) => group);
    return extra.length === 0 ? identity : { ...identity, groups: [...new Set([...identity.groups, ...extra])] };
  }

  stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    return this.inner.stillValid(user, token);
  }
}

export interface AuthenticatorOptions {
  /** How often at most the htpasswd file is looked at (tests pass 0). */
  checkIntervalMs?: number;
  /** For identity providers Layover must ask over HTTPS (OIDC discovery, JWKS). */
  dispatcher?: Dispatcher;
}

/**
 * The authenticator for `clientAuth`, chosen by name; its library (bcrypt, JOSE, LDAP) is loaded only
 * then. Wrong passwords are throttled per client and user (SignInThrottle).
 */
export async function createAuthenticator(config: LayoverConfig, logger: Logger, options: AuthenticatorOptions = {}): Promise<Authenticator> {
  const chosen = await chooseAuthenticator(config, logger, options);
  // Passwords can be guessed; tokens (static ones, JWTs) cannot.
  const passwords = config.clientAuth.mode === 'htpasswd' || config.clientAuth.mode === 'ldap';
  return passwords ? new SignInThrottle(chosen) : chosen;
}

async function chooseAuthenticator(config: LayoverConfig, logger: Logger, options: AuthenticatorOptions): Promise<Authenticator> {
  const { clientAuth } = config;
  const rememberMs = clientAuth.cacheTtlMs;
  switch (clientAuth.mode) {
    case 'none':
      return new NoAuthenticator();
    case 'htpasswd': {
      const checkInterval = options.checkIntervalMs === undefined ? {} : { checkIntervalMs: options.checkIntervalMs };
      const { HtpasswdAuthenticator } = await import('./authenticators/htpasswd.js');
      return new WithGroups(await HtpasswdAuthenticator.open({ file: clientAuth.htpasswdFile!, logger, rememberMs, ...checkInterval }), clientAuth.groups);
    }
    case 'tokens':
      return new WithGroups(new StaticTokenAuthenticator(clientAuth.tokens), clientAuth.groups);
    case 'jwt': {
      const { JwtAuthenticator } = await import('./authenticators/jwt.js');
      return new WithGroups(new JwtAuthenticator({ settings: clientAuth.jwt!, logger, ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}) }), clientAuth.groups);
    }
    case 'ldap': {
      const { LdapAuthenticator } = await import('./authenticators/ldap.js');
      return new WithGroups(await LdapAuthenticator.open({ settings: clientAuth.ldap!, logger, rememberMs }), clientAuth.groups);
    }
  }
}

/**
 * CLIENT_TOKEN_TTL, but without LDAP_BIND_DN no longer than a remembered password
 * (CLIENT_AUTH_CACHE_TTL): the directory may not let Layover look a token's user up again, so a
 * token lasts only as long as the password check it was issued on counts (the LDAP authenticator
 * needs no look-up for such a token), and clients fetch the next one with their password.
 */
function tokenLifetimeMs(config: LayoverConfig): number {
  const { mode, ldap, tokenTtlMs, cacheTtlMs } = config.clientAuth;
  return mode === 'ldap' && ldap?.bindDn === null ? Math.min(tokenTtlMs, cacheTtlMs) : tokenTtlMs;
}

export interface ClientAuthDependencies {
  /** For identity providers Layover must ask over HTTPS (JWKS): resolved and trusted like an upstream. */
  dispatcher?: Dispatcher;
}

/**
 * Client authentication as configured, or null (with a warning if that exposes
 * upstream credentials). With CLIENT_AUTH_CHALLENGE=bearer, the key of the token
 * service is loaded from CLIENT_TOKEN_KEY_FILE, or made there (not on a shared index).
 */
export async function createClientAuth(config: LayoverConfig, logger: Logger, deps: ClientAuthDependencies = {}): Promise<ClientAuth | null> {
  const { mode, accessRules, challenge } = config.clientAuth;
  if (mode === 'none') {
    if (config.credentials.length > 0) {
      logger.warn(
        { clientAuth: 'none', credentials: config.credentials.length },
        'upstream credentials are configured but clients are not authenticated (CLIENT_AUTH=none): every client that reaches Layover can pull the private content they give access to, cached or not',
      );
    }
    if (accessRules) logger.warn('accessRules are ignored: CLIENT_AUTH is none');
    if (challenge === 'bearer') logger.warn('CLIENT_AUTH_CHALLENGE=bearer is ignored: CLIENT_AUTH is none, so there is no token service');
    return null;
  }
  const authenticator = await createAuthenticator(config, logger, deps.dispatcher ? { dispatcher: deps.dispatcher } : {});
  // Replicas of a shared index accept each other's tokens only when they sign with one key: never made here then.
  const keyOptions = { createIfMissing: config.cacheIndex.kind === 'sqlite' };
  const tokens = challenge === 'bearer' ? await (await import('./token-service/layover-tokens.js')).LayoverTokens.open(config.clientAuth.tokenKeyFile, tokenLifetimeMs(config), keyOptions) : null;
  logger.info({ clientAuth: mode, challenge, accessRules: accessRules ? accessRules.length : 'default: every user may pull' }, 'clients must authenticate');
  return { mode, authenticator, policy: new AccessPolicy(accessRules), tokens };
}
