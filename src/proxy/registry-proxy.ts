import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { clientAuthHook } from '../client-auth/client-auth-hook.js';
import { annotateRequestLog } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { parseRegistryPath } from '../registry/registry-route.js';
import { serveBlob } from './blob-route.js';
import { serveManifest } from './manifest-route.js';
import { AccessRecords } from '../access/access-records.js';
import { ReadAccess } from '../access/read-access.js';
import { UpstreamProbe } from '../access/upstream-probe.js';
import type { ProxyContext, RegistryProxyContext } from './proxy-context.js';
import { clearUpstreamHeaders, forwardUpstream } from './upstream-request.js';
import { answerTokenRequest } from '../upstream/auth/token-endpoint.js';
import { TOKEN_ENDPOINT_PATH } from '../upstream/auth/upstream-auth.js';
import { upstreamTarget, type UpstreamTarget } from './upstream-target.js';

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Every request for an intercepted registry name: blobs and manifests through
 * the cache, everything else (ping, tags, referrers, catalog, token endpoints,
 * other hosts' paths) passed through unchanged, pushes only with ALLOW_PUSH.
 */
export async function registryProxy(app: FastifyInstance, proxyContext: ProxyContext): Promise<void> {
  const { config, cache, upstreamAuth, clientAuth } = proxyContext;
  const readAccess = new ReadAccess({
    records: new AccessRecords(cache),
    probe: new UpstreamProbe(app.upstream, upstreamAuth),
    clientAuthOn: Boolean(clientAuth),
    layoverCredentials: (origin) => upstreamAuth.concerns(origin),
    ttlMs: config.accessChecks.ttlMs,
    anonymousTtlMs: config.accessChecks.anonymousTtlMs,
    failOpen: config.accessChecks.failOpen,
  });
  const ctx: RegistryProxyContext = { ...proxyContext, readAccess };
  // Bodies (pushes) stream through untouched: parsing JSON would change the
  // bytes, and with them a manifest's digest.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  // Before any cache lookup or upstream request (onRequest runs before the body is read, too).
  if (ctx.clientAuth) app.addHook('onRequest', clientAuthHook({ clientAuth: ctx.clientAuth, intercepted: ctx.intercepted, allowPush: ctx.config.allowPush }));

  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: (request, reply) => route(ctx, request, reply),
  });
}

/**
 * The `/v2/` ping goes upstream (its 401 tells clients how to authenticate),
 * but when the upstream is down or failing Layover answers it itself, so that
 * clients go on to the manifests and blobs it can serve from the cache.
 */
function ping(ctx: RegistryProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget): FastifyReply {
  const answerLocally = (): void => {
    clearUpstreamHeaders(reply);
    annotateRequestLog(request, { cache: 'stale' });
    void reply.code(200).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0').send('{}');
  };
  annotateRequestLog(request, { registry: target.registry, cache: 'pass' });
  return forwardUpstream(request, reply, target, {
    auth: ctx.upstreamAuth.forPing(),
    onUnreachable: answerLocally,
    onResponse: (res) => {
      if (res.statusCode < 500 && res.statusCode !== 429) return void reply.send(res.stream);
      res.stream.resume();
      answerLocally();
    },
  });
}

function route(ctx: RegistryProxyContext, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const target = upstreamTarget(request.host, ctx.intercepted);
  if (!target) throw new OciError('NOT_FOUND', `${request.host || 'this host'} is not a registry Layover proxies`);
  const path = request.url.split('?')[0]!;
  // Where Layover points Bearer challenges of registries it holds credentials for (src/upstream/auth/).
  if (path === TOKEN_ENDPOINT_PATH && ctx.upstreamAuth.concerns(target.origin)) return answerTokenRequest(ctx.upstreamAuth, request, reply, target);
  const registryRoute = parseRegistryPath(path);
  const repo = registryRoute && 'name' in registryRoute ? registryRoute.name : undefined;
  if (!READ_METHODS.has(request.method)) {
    if (!ctx.config.allowPush) throw new OciError('UNSUPPORTED', 'Layover is a pull-through cache: pushing is off (ALLOW_PUSH)');
    annotateRequestLog(request, { registry: target.registry, cache: 'pass' });
    return forwardUpstream(request, reply, target, { auth: ctx.upstreamAuth.for(repo, 'push') });
  }
  switch (registryRoute?.kind) {
    case 'blob':
      return serveBlob(ctx, request, reply, target, registryRoute.name, registryRoute.digest);
    case 'manifest':
      return serveManifest(ctx, request, reply, target, registryRoute.name, registryRoute.reference);
    case 'ping':
      return ping(ctx, request, reply, target);
    default: {
      annotateRequestLog(request, { registry: target.registry, repo, cache: 'pass' });
      return forwardUpstream(request, reply, target, { auth: ctx.upstreamAuth.for(repo) });
    }
  }
}
