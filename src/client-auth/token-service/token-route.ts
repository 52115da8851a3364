import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../../log/request-log.js';
import type { HostnameSet } from '../../registry/hostname.js';
import { OciError } from '../../registry/oci-errors.js';
import { upstreamTarget } from '../../proxy/upstream-target.js';
import type { ClientIdentity } from '../authenticator.js';
import { BASIC_CHALLENGE } from '../client-challenge.js';
import type { ClientAuth } from '../create-client-auth.js';
import type { LayoverTokens } from './layover-tokens.js';
import { formatScopes, grantAccess, parseScopes } from './token-scopes.js';

/** A token request is a handful of fields; anything larger is not one. */
const FORM_LIMIT_BYTES = 16 * 1024;

export interface TokenRouteOptions {
  clientAuth: ClientAuth & { tokens: LayoverTokens };
  intercepted: HostnameSet;
  allowPush: boolean;
  /** The Host constraint of docker.proxy. */
  hosts: RegExp;
}

/** OAuth2's error form (RFC 6749 5.2), which token clients read for 400s. */
function badRequest(reply: FastifyReply, error: string, description: string): FastifyReply {
  return reply.code(400).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify({ error, error_description: description }));
}

function unauthorized(reply: FastifyReply, message: string): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', BASIC_CHALLENGE)
    .header('content-type', 'application/json')
    .send(JSON.stringify(new OciError('UNAUTHORIZED', message).toBody()));
}

const basicHeader = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

/**
 * Layover's token service, `https://docker.proxy/token`, where Bearer challenges
 * (CLIENT_AUTH_CHALLENGE=bearer) send clients, as the distribution token spec
 * describes: GET with the client's credentials as Basic (docker, skopeo,
 * podman; for CLIENT_AUTH=jwt the JWT is the password, or sent as Bearer), or
 * POST of an OAuth2 form with `grant_type=password` (containerd tries that
 * first). `service` must be a registry name Layover intercepts: it becomes the
 * token's audience. Each `scope` is granted as far as the access policy allows
 * and dropped beyond that; the answer is `{token, access_token, expires_in,
 * issued_at, scope}`. Without valid credentials: 401 with a Basic challenge.
 * No refresh tokens are issued, so `grant_type=refresh_token` is refused (400,
 * and containerd falls back to GET). The answer carries a token: it is neither
 * cached nor logged, and neither is the request body.
 */
export async function tokenRoute(app: FastifyInstance, options: TokenRouteOptions): Promise<void> {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => {
    done(null, new URLSearchParams(body as string));
  });
  app.route({
    method: ['GET', 'POST'],
    url: '/token',
    constraints: { host: options.hosts },
    handler: (request, reply) => answer(options, request, reply),
  });
}

async function answer(options: TokenRouteOptions, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const { clientAuth, intercepted, allowPush } = options;
  let params: URLSearchParams;
  let authorization = request.headers.authorization;
  if (request.method === 'POST') {
    if (!(request.body instanceof URLSearchParams)) return badRequest(reply, 'invalid_request', 'expected an application/x-www-form-urlencoded body');
    params = request.body;
    const grant = params.get('grant_type');
    if (grant !== 'password') return badRequest(reply, 'unsupported_grant_type', 'Layover issues tokens for grant_type=password only');
    authorization = basicHeader(params.get('username') ?? '', params.get('password') ?? '');
  } else {
    params = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
  }
  const service = params.get('service');
  const target = service === null ? null : upstreamTarget(service, intercepted);
  if (!target) return badRequest(reply, 'invalid_request', 'service must be a registry name Layover proxies');
  annotateRequestLog(request, { registry: target.registry });

  let identity: ClientIdentity | null;
  try {
    identity = await clientAuth.authenticator.authenticate(authorization);
  } catch (error) {
    annotateRequestLog(request, { tokenRequest: 'unavailable' });
    throw error;
  }
  if (!identity) {
    annotateRequestLog(request, { tokenRequest: authorization ? 'rejected' : 'missing' });
    return unauthorized(reply, authorization ? 'the credentials are not valid for Layover' : 'Layover requires authentication: log in to this registry name');
  }
  const access = grantAccess(clientAuth.policy, identity, target.registry, parseScopes(params.getAll('scope')), allowPush);
  const issued = await clientAuth.tokens.issue(identity, target.registry, access);
  annotateRequestLog(request, { user: identity.user, tokenRequest: 'issued', granted: formatScopes(access) });
  const body = {
    token: issued.token,
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt.toISOString(),
    scope: formatScopes(access),
  };
  return reply.code(200).header('content-type', 'application/json').header('cache-control', 'no-store').header('pragma', 'no-cache').send(JSON.stringify(body));
}
