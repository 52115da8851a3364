import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { isOwnPull, OWN_PULL_IDENTITY } from '../prefetch/own-pull-credential.js';
import { isClientTokenRequest, isRefusal, requestTargetOf } from '../proxy/request-routing.js';
import { rememberIdentity } from './authenticated-requests.js';
import type { ClientIdentity } from './authenticator.js';
import { parseBearer } from './authenticator.js';
import { signInSource } from './sign-in-source.js';
import { BASIC_CHALLENGE, bearerChallenge } from './client-challenge.js';
import { accessCovers, type TokenAccess } from './token-service/token-scopes.js';
import type { ClientAuth } from './create-client-auth.js';

export interface ClientAuthHookOptions {
  clientAuth: ClientAuth;
}

/** A 401 with the challenge the client must answer; the error handler writes it like every other error. */
const unauthorized = (message: string, challenge: string): OciError => new OciError('UNAUTHORIZED', message, undefined, { headers: { 'www-authenticate': challenge } });

/** Who a request is from, and, when it carries a token of Layover's, what that token grants. */
interface Identified {
  readonly identity: ClientIdentity;
  readonly access?: readonly TokenAccess[];
}

/**
 * A token from Layover's token service is checked against Layover's key only, must be for the
 * `audience` the request's challenge names, and is good only while its user is still known to the
 * authenticator (removed from the htpasswd file: refused at the next reload, not at expiry);
 * anything else goes to the authenticator.
 */
async function identify(clientAuth: ClientAuth, authorization: string | undefined, audience: string, source: string): Promise<Identified | null> {
  const bearer = parseBearer(authorization);
  if (bearer !== null && clientAuth.tokens?.isOurs(bearer)) {
    const verified = await clientAuth.tokens.verify(bearer, audience);
    return verified && (await clientAuth.authenticator.stillValid(verified.identity.user, verified.lifetime)) ? verified : null;
  }
  const identity = await clientAuth.authenticator.authenticate(authorization, source);
  return identity && { identity };
}

/**
 * Runs before every route of the registry proxy, so a refused request touches
 * neither the cache nor an upstream. Without valid credentials: 401 UNAUTHORIZED
 * with a Basic challenge, or with CLIENT_AUTH_CHALLENGE=bearer a Bearer challenge
 * sending the client to Layover's token service (./token-service/) where it can
 * reach it (./client-challenge.ts: docker.proxy for a registry's own name, the
 * custom domain or the mirror name it used otherwise); credentials that cannot
 * be checked now (identity provider down): 503 UNAVAILABLE; authenticated but
 * not allowed: 403 DENIED. In bearer mode a request may carry a token of
 * Layover's (valid for the challenge's service: the registry name, the custom
 * domain, or the mirror name the request is sent to) or, as in basic mode,
 * credentials the authenticator checks. The access policy is asked
 * on every request, whichever way the client proved who it is. The client's
 * Authorization is Layover's own and is removed before anything is forwarded,
 * so upstream credentials (src/upstream/auth/) apply as if the client had sent none.
 */
export function clientAuthHook({ clientAuth }: ClientAuthHookOptions): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    // Decided once for every request by src/proxy/request-target.ts (registered before this hook):
    // the registry and repository the client named, whether by Host, mirror or custom domain.
    const target = requestTargetOf(request);
    if (!target || isRefusal(target)) return; // the route answers NOT_FOUND without touching anything
    if (isClientTokenRequest(target)) return; // Layover's token service checks the credentials itself
    const authorization = request.headers.authorization;
    delete request.raw.headers.authorization;
    delete request.headers.authorization;
    const pull = request.method === 'GET' || request.method === 'HEAD';
    // Layover's own pulls (prefetch, asked for by an admin through the admin API): in process only,
    // with a credential no socket ever carried; a read of a well-formed path, nothing else.
    if (pull && !target.token && isOwnPull(authorization)) {
      annotateRequestLog(request, { user: OWN_PULL_IDENTITY.user });
      rememberIdentity(request, OWN_PULL_IDENTITY);
      if (target.routeError) throw target.routeError;
      return;
    }
    // A token relay request (GET or an OAuth2 POST) asks for a token, it pushes nothing: it is judged as a pull.
    const action = pull || target.token ? 'pull' : 'push';
    let identified: Identified | null;
    try {
      identified = await identify(clientAuth, authorization, target.clientToken.service, signInSource(request.ip));
    } catch (error) {
      annotateRequestLog(request, { registry: target.registry, clientAuth: 'unavailable' });
      throw error;
    }
    if (!identified) {
      annotateRequestLog(request, { registry: target.registry, clientAuth: authorization ? 'rejected' : 'missing' });
      const repository = target.clientRepository;
      const challenge = clientAuth.tokens
        ? bearerChallenge(target.clientToken, repository ? { repository, actions: pull ? ['pull'] : ['pull', 'push'] } : null)
        : BASIC_CHALLENGE;
      throw unauthorized(authorization ? 'the credentials are not valid for Layover' : 'Layover requires authentication: log in to this registry name', challenge);
    }
    const { identity, access } = identified;
    annotateRequestLog(request, { user: identity.user });
    rememberIdentity(request, identity);
    // A malformed path is refused only now, so that it tells an unauthenticated client nothing.
    if (target.routeError) throw target.routeError;
    const route = target.route;
    const repository = target.repository;
    // Answered here rather than upstream: the upstream's challenge would send the client, with
    // Layover's password, to the upstream's token realm.
    if (route?.kind === 'ping') {
      annotateRequestLog(request, { registry: target.registry, cache: 'pass' });
      return reply.code(200).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0').send('{}');
    }
    // A token of Layover's is good for what its `access` lists, as the Docker token spec has it:
    // anything else gets a new challenge naming the scope it needs.
    const clientRepository = target.clientRepository;
    if (access && !accessCovers(access, { repository: clientRepository, action, catalog: route?.kind === 'catalog' })) {
      annotateRequestLog(request, { registry: target.registry, clientAuth: 'insufficient-scope' });
      const scope = clientRepository ? { repository: clientRepository, actions: action === 'pull' ? (['pull'] as const) : (['pull', 'push'] as const) } : null;
      throw unauthorized(`the token does not grant ${action} on ${clientRepository ?? 'the catalog'}`, `${bearerChallenge(target.clientToken, scope)},error="insufficient_scope"`);
    }
    // Every method is judged, pushes too while ALLOW_PUSH is off (the route refuses those after):
    // a request the policy refuses never reaches a route that could forward it.
    if (!clientAuth.policy.allows(identity, { action, registry: target.registry, repository })) {
      throw new OciError('DENIED', `${identity.user} may not ${action} ${repository ? `${target.registry}/${repository}` : `on ${target.registry}`}`);
    }
  };
}
