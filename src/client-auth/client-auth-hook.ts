import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import type { HostnameSet } from '../registry/hostname.js';
import { parseRegistryPath } from '../registry/registry-route.js';
import { upstreamTarget } from '../proxy/upstream-target.js';
import type { ClientAuth } from './create-client-auth.js';

/** Basic is what `docker login`, skopeo `--creds` and podman's authfile answer without a token service. */
export const CLIENT_CHALLENGE = 'Basic realm="Layover"';

export interface ClientAuthHookOptions {
  clientAuth: ClientAuth;
  intercepted: HostnameSet;
  allowPush: boolean;
}

function unauthorized(reply: FastifyReply, message: string): FastifyReply {
  const body = new OciError('UNAUTHORIZED', message).toBody();
  return reply
    .code(401)
    .header('www-authenticate', CLIENT_CHALLENGE)
    .header('docker-distribution-api-version', 'registry/2.0')
    .header('content-type', 'application/json')
    .send(JSON.stringify(body));
}

/**
 * Runs before every route of the registry proxy, so a refused request touches
 * neither the cache nor an upstream. Without valid credentials: 401 UNAUTHORIZED
 * with a Basic challenge; authenticated but not allowed: 403 DENIED. The
 * client's Authorization is Layover's own and is removed before anything is
 * forwarded, so upstream credentials (src/upstream/auth/) apply as if the
 * client had sent none.
 */
export function clientAuthHook({ clientAuth, intercepted, allowPush }: ClientAuthHookOptions): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const target = upstreamTarget(request.host, intercepted);
    if (!target) return; // the route answers NOT_FOUND without touching anything
    const authorization = request.headers.authorization;
    delete request.raw.headers.authorization;
    delete request.headers.authorization;
    const identity = await clientAuth.authenticator.authenticate(authorization);
    if (!identity) {
      annotateRequestLog(request, { registry: target.registry, clientAuth: authorization ? 'rejected' : 'missing' });
      return unauthorized(reply, authorization ? 'the credentials are not valid for Layover' : 'Layover requires authentication: log in to this registry name');
    }
    annotateRequestLog(request, { user: identity.user });
    const path = request.url.split('?')[0]!;
    const route = parseRegistryPath(path);
    // Answered here rather than upstream: the upstream's challenge would send the client, with
    // Layover's password, to the upstream's token realm.
    if (route?.kind === 'ping') {
      annotateRequestLog(request, { registry: target.registry, cache: 'pass' });
      return reply.code(200).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0').send('{}');
    }
    const pull = request.method === 'GET' || request.method === 'HEAD';
    if (!pull && !allowPush) return; // the route refuses it: pushing is off
    const repository = route && 'name' in route ? route.name : undefined;
    const action = pull ? 'pull' : 'push';
    if (!clientAuth.policy.allows(identity, { action, registry: target.registry, repository })) {
      throw new OciError('DENIED', `${identity.user} may not ${action} ${repository ? `${target.registry}/${repository}` : `on ${target.registry}`}`);
    }
  };
}
