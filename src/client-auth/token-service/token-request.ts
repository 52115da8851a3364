import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequestLog } from '../../log/request-log.js';
import type { TokenSite } from '../../proxy/request-routing.js';
import type { RoutingTables } from '../../proxy/request-target.js';
import { OciError } from '../../registry/oci-errors.js';
import { readLimited } from '../../upstream/read-limited.js';
import type { ClientIdentity } from '../authenticator.js';
import { BASIC_CHALLENGE } from '../client-challenge.js';
import type { ClientAuth } from '../create-client-auth.js';
import { signInSource } from '../sign-in-source.js';
import type { LayoverTokens } from './layover-tokens.js';
import { tokenAudience } from './token-audience.js';
import { formatScopes, grantAccess, parseScopes } from './token-scopes.js';

/** A token request is a handful of fields; anything larger is not one. */
const FORM_LIMIT_BYTES = 16 * 1024;
const FORM_TYPE = 'application/x-www-form-urlencoded';

export interface ClientTokenOptions {
  clientAuth: ClientAuth & { tokens: LayoverTokens };
  /** What names mean (intercepted registries, custom domains), as for routing. */
  tables: RoutingTables;
  allowPush: boolean;
}

/** OAuth2's error form (RFC 6749 5.2), which token clients read for 400s. */
function badRequest(reply: FastifyReply, error: string, description: string): FastifyReply {
  return reply.code(400).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify({ error, error_description: description }));
}

/** Token clients answer a 401 with Basic credentials; the error handler writes it like every other error. */
/** A token must be good for at least this long to be worth issuing. */
const MIN_REMAINING_S = 5;
const unauthorized = (message: string): OciError => new OciError('UNAUTHORIZED', message, undefined, { headers: { 'www-authenticate': BASIC_CHALLENGE } });

const basicHeader = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

/** What `service` may be at this site, for the 400 that refuses another. */
function expectedService(site: TokenSite): string {
  if (site.kind === 'own' && site.dockerProxy) return `a registry name Layover proxies, or ${site.name}`;
  return site.name;
}

/** A POSTed form (bounded), or a reason to refuse it. */
async function readForm(request: FastifyRequest): Promise<URLSearchParams | string> {
  const type = String(request.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== FORM_TYPE || !(request.body instanceof Readable)) return `expected an ${FORM_TYPE} body`;
  const tooMuch = 'a token request is a few fields, not this much';
  // Refused unread when it says so: reading stops at the limit otherwise, which ends the connection.
  if (Number(request.headers['content-length']) > FORM_LIMIT_BYTES) return tooMuch;
  const bytes = await readLimited(request.body, FORM_LIMIT_BYTES);
  return bytes ? new URLSearchParams(bytes.toString('utf8')) : tooMuch;
}

/**
 * Layover's token service for its own clients (CLIENT_AUTH_CHALLENGE=bearer), `/token` on each of
 * Layover's own names: docker.proxy, a custom domain, a name or address mirror clients use
 * (src/proxy/request-target.ts routes them here; the client-auth hook lets them through, as this
 * checks the credentials itself). Bearer challenges send clients here, as the distribution token
 * spec describes: GET with the client's credentials as Basic (docker, skopeo, podman; for
 * CLIENT_AUTH=jwt the JWT is the password, or sent as Bearer), or POST of an OAuth2 form with
 * `grant_type=password` (containerd tries that first). `service` must be the one the challenge
 * named (./token-audience.ts): it becomes the token's audience. Each `scope` is granted as far as
 * the access policy allows and dropped beyond that; the answer is `{token, access_token,
 * expires_in, issued_at, scope}`. Without valid credentials: 401 with a Basic challenge. No
 * refresh tokens are issued, so `grant_type=refresh_token` is refused (400, and containerd falls
 * back to GET). The answer carries a token: it is neither cached nor logged, and neither is the
 * request body.
 */
export async function answerClientTokenRequest(options: ClientTokenOptions, request: FastifyRequest, reply: FastifyReply, site: TokenSite): Promise<FastifyReply> {
  const { clientAuth, tables, allowPush } = options;
  let params: URLSearchParams;
  let authorization = request.headers.authorization;
  if (request.method === 'POST') {
    const form = await readForm(request);
    if (typeof form === 'string') return badRequest(reply, 'invalid_request', form);
    params = form;
    const grant = params.get('grant_type');
    if (grant !== 'password') return badRequest(reply, 'unsupported_grant_type', 'Layover issues tokens for grant_type=password only');
    authorization = basicHeader(params.get('username') ?? '', params.get('password') ?? '');
  } else if (request.method === 'GET') {
    params = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
  } else {
    throw new OciError('UNSUPPORTED', 'the token service takes GET and POST');
  }
  const service = params.get('service');
  const audience = service === null ? null : tokenAudience(site, service, tables);
  if (!audience) return badRequest(reply, 'invalid_request', `service must be ${expectedService(site)}`);
  annotateRequestLog(request, { service: audience.audience, ...(site.kind === 'own' && site.ns ? { registry: site.ns } : {}) });

  let identity: ClientIdentity | null;
  try {
    identity = await clientAuth.authenticator.authenticate(authorization, signInSource(request.ip));
  } catch (error) {
    annotateRequestLog(request, { tokenRequest: 'unavailable' });
    throw error;
  }
  if (!identity) {
    annotateRequestLog(request, { tokenRequest: authorization ? 'rejected' : 'missing' });
    throw unauthorized(authorization ? 'the credentials are not valid for Layover' : 'Layover requires authentication: log in to this registry name');
  }
  const access = grantAccess(clientAuth.policy, identity, audience, parseScopes(params.getAll('scope')), allowPush);
  // A JWT accepted inside the clock tolerance would buy a token dead on arrival, and clients read an
  // expires_in of 0 as 60 s: they would loop on 401s. Such a client needs a fresh JWT.
  if (identity.expiresAt !== undefined && identity.expiresAt - Date.now() / 1000 < MIN_REMAINING_S) {
    throw unauthorized(`the credential expires in under ${MIN_REMAINING_S} s: log in again with a fresh one`);
  }
  const issued = await clientAuth.tokens.issue(identity, audience.audience, access);
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
