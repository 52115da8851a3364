import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { ClientAuth } from '../client-auth/create-client-auth.js';
import { parseBearer } from '../client-auth/authenticator.js';
import { BASIC_CHALLENGE } from '../client-auth/client-challenge.js';
import { signInSource } from '../client-auth/sign-in-source.js';
import { ClientNetworks } from '../dns/client-networks.js';
import { OciError } from '../registry/oci-errors.js';
import { OwnHostnames } from './own-hostnames.js';

export interface AdminAccessOptions {
  /** The admin token (ADMIN_TOKEN_FILE). */
  token: string;
  /** ADMIN_ALLOW_NETWORKS: the admin API answers nobody else. */
  allowNetworks: readonly string[];
  /** Client authentication, when on: members of `group` are admins too. */
  clientAuth: ClientAuth | null;
  group: string;
  /** ADMIN_HOSTNAMES: names besides Layover's own that requests may use (`*`: any). */
  hostnames: readonly string[];
}

/**
 * `api`: the admin API, only from ADMIN_ALLOW_NETWORKS and only for an admin.
 * `view`: the status page and /metrics, open as the other service routes are, except that with
 * client authentication on they show what was pulled only to an admin.
 */
export type AdminScope = 'api' | 'view';

const ADMIN_CHALLENGE = 'Bearer realm="layover-admin"';

/** Who may operate Layover: the same check for every admin route, written once. */
export class AdminAccess {
  readonly #token: Buffer;
  readonly #allow: ClientNetworks;
  readonly #hostnames: OwnHostnames;

  constructor(private readonly options: AdminAccessOptions) {
    this.#token = Buffer.from(options.token);
    this.#allow = new ClientNetworks(options.allowNetworks);
    this.#hostnames = new OwnHostnames(options.hostnames);
  }

  /** A preHandler that lets only admins through (for `scope`); refusals are OCI errors. */
  guard(scope: AdminScope): preHandlerAsyncHookHandler {
    return async (request) => {
      if (!this.#hostnames.allows(request.host)) {
        throw new OciError('DENIED', 'Layover answers this only under its own names: an address, a private name, docker.proxy, its hostname or ADMIN_HOSTNAMES');
      }
      if (scope === 'api' && !this.#allow.includes(request.socket.remoteAddress ?? '')) {
        throw new OciError('DENIED', 'the admin API does not answer this address (ADMIN_ALLOW_NETWORKS)');
      }
      if (scope === 'api' && sentByAnotherSite(request)) {
        throw new OciError('DENIED', 'the admin API does not act on requests a browser sends from another site');
      }
      if (scope === 'view' && this.options.clientAuth === null) return;
      await this.#checkAdmin(request);
    };
  }

  async #checkAdmin(request: FastifyRequest): Promise<void> {
    const authorization = request.headers.authorization;
    const challenge = this.options.clientAuth ? `${ADMIN_CHALLENGE}, ${BASIC_CHALLENGE}` : ADMIN_CHALLENGE;
    if (authorization === undefined) throw new OciError('UNAUTHORIZED', 'an admin token or an admin\'s credentials are needed', undefined, { headers: { 'www-authenticate': challenge } });
    const bearer = parseBearer(authorization);
    if (bearer !== null && this.#isAdminToken(bearer)) return;
    const identity = this.options.clientAuth ? await this.options.clientAuth.authenticator.authenticate(authorization, signInSource(request.ip)) : null;
    if (identity === null) throw new OciError('UNAUTHORIZED', 'the admin token or the credentials are wrong', undefined, { headers: { 'www-authenticate': challenge } });
    if (!identity.groups.includes(this.options.group)) throw new OciError('DENIED', `${identity.user} is not in the admin group (ADMIN_GROUP)`);
  }

  #isAdminToken(candidate: string): boolean {
    const given = Buffer.from(candidate);
    return given.length === this.#token.length && timingSafeEqual(given, this.#token);
  }
}

/** Methods that change nothing: a browser may follow a link to them. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A request that changes something, sent by a browser on a page of another site (cross-site request
 * forgery): a form posted there carries the admin's saved Basic credentials, and `/admin/verify` or
 * `/admin/prune` need no JSON body. Browsers say where a request comes from (`Sec-Fetch-Site`, and
 * `Origin` on every cross-origin POST); the CLI, curl and scripts send neither.
 */
function sentByAnotherSite(request: FastifyRequest): boolean {
  if (SAFE_METHODS.has(request.method)) return false;
  // A browser that says where the request comes from is believed: a reverse proxy may rewrite Host,
  // which would make the page's own origin look foreign. Origin is for browsers that do not say.
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site !== 'same-origin' && site !== 'none';
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host.toLowerCase() !== (request.headers.host ?? '').toLowerCase();
  } catch {
    // `Origin: null` (a sandboxed frame, a redirect across sites) or garbage: no site vouches for it.
    return true;
  }
}
