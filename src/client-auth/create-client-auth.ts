import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { LayoverConfig } from '../config/layover-config.js';
import { AccessPolicy } from './access-policy.js';
import type { Authenticator, ClientIdentity } from './authenticator.js';
import { HtpasswdAuthenticator } from './authenticators/htpasswd.js';
import { NoAuthenticator } from './authenticators/none.js';
import { StaticTokenAuthenticator } from './authenticators/static-tokens.js';

/** What the proxy needs to check clients: null when authentication is off. */
export interface ClientAuth {
  readonly mode: Exclude<LayoverConfig['clientAuth']['mode'], 'none'>;
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
}

/** Adds the config file's `clientGroups` to whatever groups the authenticator found. */
class WithGroups implements Authenticator {
  constructor(
    readonly inner: Authenticator,
    readonly groups: Readonly<Record<string, readonly string[]>>,
  ) {}

  async authenticate(authorization: string | undefined): Promise<ClientIdentity | null> {
    const identity = await this.inner.authenticate(authorization);
    if (!identity) return null;
    const extra = Object.entries(this.groups)
      .filter(([, users]) => users.includes(identity.user))
      .map(([group]) => group);
    return extra.length === 0 ? identity : { user: identity.user, groups: [...new Set([...identity.groups, ...extra])] };
  }
}

/** The authenticator for `clientAuth`, chosen by name; the start-up warning when there is none. */
export async function createAuthenticator(config: LayoverConfig, logger: Logger, options: { checkIntervalMs?: number } = {}): Promise<Authenticator> {
  const { clientAuth } = config;
  switch (clientAuth.mode) {
    case 'none':
      return new NoAuthenticator();
    case 'htpasswd':
      return new WithGroups(await HtpasswdAuthenticator.open({ file: clientAuth.htpasswdFile!, logger, ...options }), clientAuth.groups);
    case 'tokens':
      return new WithGroups(new StaticTokenAuthenticator(clientAuth.tokens), clientAuth.groups);
    case 'jwt':
    case 'ldap':
      throw new Error(`CLIENT_AUTH=${clientAuth.mode} is not available in this build`);
  }
}

export interface ClientAuthDependencies {
  /** For identity providers Layover must ask over HTTPS (JWKS): resolved and trusted like an upstream. */
  dispatcher?: Dispatcher;
}

/** Client authentication as configured, or null (with a warning if that exposes upstream credentials). */
export async function createClientAuth(config: LayoverConfig, logger: Logger, _deps: ClientAuthDependencies = {}): Promise<ClientAuth | null> {
  const { mode, accessRules } = config.clientAuth;
  if (mode === 'none') {
    if (config.credentials.length > 0) {
      logger.warn(
        { clientAuth: 'none', credentials: config.credentials.length },
        'upstream credentials are configured but clients are not authenticated (CLIENT_AUTH=none): every client that reaches Layover can pull the private content they give access to, cached or not',
      );
    }
    if (accessRules) logger.warn('accessRules are ignored: CLIENT_AUTH is none');
    return null;
  }
  const authenticator = await createAuthenticator(config, logger);
  logger.info({ clientAuth: mode, accessRules: accessRules ? accessRules.length : 'default: every user may pull' }, 'clients must authenticate');
  return { mode, authenticator, policy: new AccessPolicy(accessRules) };
}
