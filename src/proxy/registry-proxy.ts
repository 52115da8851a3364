import type { Server } from 'node:https';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { clientAuthHook } from '../client-auth/client-auth-hook.js';
import { answerClientTokenRequest } from '../client-auth/token-service/token-request.js';
import { annotateRequestLog } from '../log/request-log.js';
import { CustomDomainRoutes } from '../registry/custom-domain-routes.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { serveBlob } from './blob-route.js';
import { HitConnections } from './hit-connections.js';
import { HitPath, type HitPathHost } from './hit-path.js';
import { serveManifest, upstreamFailure } from './manifest-route.js';
import { AccessRecords } from '../access/access-records.js';
import { ReadAccess } from '../access/read-access.js';
import { UpstreamProbe } from '../access/upstream-probe.js';
import { heldSample } from '../access/held-sample.js';
import { storageSample } from './redirects/storage-sample.js';
import type { ProxyContext, RegistryProxyContext } from './proxy-context.js';
import { isClientTokenRequest, isRefusal, type RequestTarget, requestTargetOf } from './request-routing.js';
import { registerRequestTarget, type RoutingTables } from './request-target.js';
import { sendTagList } from './tag-list.js';
import { clearUpstreamHeaders, forwardUpstream, unreachable } from './upstream-request.js';
import { answerTokenRequest } from '../upstream/auth/token-endpoint.js';
import type { AuthScope } from '../upstream/auth/upstream-auth.js';
import { RegistryPorts, type UpstreamTarget } from './upstream-target.js';
import { discardBody } from '../upstream/read-limited.js';

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Every request the TLS listener's other routes do not take: a registry named by the Host, by
 * containerd's `ns` or a podman mirror path prefix on Layover's own name, or a custom domain
 * (./request-target.ts decides which, once). Blobs and manifests go through the cache; everything
 * else (ping, tags, referrers, catalog, token endpoints, other hosts' paths) is passed through,
 * renamed where the names differ upstream; pushes only with ALLOW_PUSH. `/token` on Layover's own
 * names (docker.proxy, custom domains, mirror names) is its clients' token service.
 */
export async function registryProxy(app: FastifyInstance, proxyContext: ProxyContext & { hitPath?: HitPathHost }): Promise<void> {
  const { config, cache, upstreamAuth, clientAuth } = proxyContext;
  const records = new AccessRecords(cache);
  const readAccess = new ReadAccess({
    records,
    probe: new UpstreamProbe(app.upstream, upstreamAuth, { sample: (digest) => heldSample(cache, digest), fetchStorage: storageSample(app.storageRedirects) }),
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
  // Where each request goes is decided once, before client authentication and any route.
  // A registry is reached only at the ports REGISTRIES gives it: any other port in Host is refused before anything is dialled.
  const tables: RoutingTables = { intercepted: ctx.intercepted, domains: new CustomDomainRoutes(config.customDomains), ports: new RegistryPorts(config.registryPatterns) };
  registerRequestTarget(app, tables);
  if (proxyContext.hitPath) {
    const hitPath = new HitPath(ctx, tables, proxyContext.hitPath);
    hitPath.install(app.server as Server);
    new HitConnections(hitPath, proxyContext.hitPath.silentConnections).install(app.server as Server);
  }
  // Before any cache lookup or upstream request (onRequest runs before the body is read, too).
  if (ctx.clientAuth) app.addHook('onRequest', clientAuthHook({ clientAuth: ctx.clientAuth }));

  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: (request, reply) => route(ctx, tables, records, request, reply),
  });
}

/**
 * The `/v2/` ping goes upstream (its 401 tells clients how to authenticate). When the upstream is
 * down or failing, Layover answers it itself, so that clients go on to the manifests and blobs it can
 * serve from the cache, but only for a registry that answered Layover before: otherwise there is
 * nothing to go on to, and a 200 would hide the outage behind later, stranger errors.
 */
function ping(ctx: RegistryProxyContext, records: AccessRecords, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget): FastifyReply {
  const answerLocally = (failure: OciError): void => {
    clearUpstreamHeaders(reply);
    if (!records.wasReached(target.origin)) return void reply.send(failure);
    annotateRequestLog(request, { cache: 'stale' });
    void reply.code(200).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0').send('{}');
  };
  annotateRequestLog(request, { registry: target.registry, cache: 'pass' });
  return forwardUpstream(request, reply, target, {
    auth: ctx.upstreamAuth.forPing(),
    onUnreachable: (error) => answerLocally(unreachable(target, error)),
    onResponse: (res) => {
      if (res.statusCode < 500 && res.statusCode !== 429) {
        records.markReached(target.origin).catch((error: unknown) => request.log.warn({ err: error }, 'recording a reached upstream failed'));
        return void reply.send(res.stream);
      }
      // Where Layover cannot stand in, a rate limit is an answer in itself (its Retry-After included).
      if (res.statusCode === 429 && !records.wasReached(target.origin)) return void reply.send(res.stream);
      discardBody(res.stream);
      answerLocally(upstreamFailure(target, res.statusCode));
    },
  });
}

/** A mirror's `/v2/` without a registry (podman pings the mirror host itself): Layover answers for all of them. */
function localPing(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  annotateRequestLog(request, { cache: 'pass' });
  return reply.code(200).header('content-type', 'application/json').header('docker-distribution-api-version', 'registry/2.0').send('{}');
}

function route(ctx: RegistryProxyContext, tables: RoutingTables, records: AccessRecords, request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
  const routing = requestTargetOf(request);
  if (!routing) throw new OciError('NOT_FOUND', 'no route');
  if (isRefusal(routing)) {
    annotateRequestLog(request, { refused: routing.refusal.code });
    throw routing.refusal;
  }
  if (isClientTokenRequest(routing)) {
    const clientAuth = ctx.clientAuth;
    if (!clientAuth?.tokens) throw new OciError('NOT_FOUND', 'no token service here: Layover issues tokens only with CLIENT_AUTH_CHALLENGE=bearer');
    return answerClientTokenRequest({ clientAuth: { ...clientAuth, tokens: clientAuth.tokens }, tables, allowPush: ctx.config.allowPush }, request, reply, routing.tokenSite);
  }
  const target: RequestTarget = routing;
  const upstream = target.upstream;
  if (!upstream) return localPing(request, reply);
  // Where Layover points Bearer challenges (src/upstream/auth/): for a registry it holds credentials
  // for, wherever names differ upstream (a mirror path prefix, a custom domain), and where the realm
  // is out of the client's reach. The path is Layover's on every registry name: no registry has it.
  if (target.token) return answerTokenRequest(ctx.upstreamAuth, request, reply, upstream);
  if (target.routeError) throw target.routeError;
  const registryRoute = target.route;
  const repo = registryRoute && 'name' in registryRoute ? registryRoute.name : undefined;
  if (!READ_METHODS.has(request.method)) {
    if (!ctx.config.allowPush) throw new OciError('UNSUPPORTED', 'Layover is a pull-through cache: pushing is off (ALLOW_PUSH)');
    annotateRequestLog(request, { registry: upstream.registry, cache: 'pass' });
    return forwardUpstream(request, reply, upstream, withLayoverCredentials(ctx, repo, 'push'));
  }
  switch (registryRoute?.kind) {
    case 'blob':
      return serveBlob(ctx, request, reply, upstream, registryRoute.name, registryRoute.digest);
    case 'manifest':
      return serveManifest(ctx, request, reply, upstream, registryRoute.name, registryRoute.reference);
    case 'ping':
      return ping(ctx, records, request, reply, upstream);
    default: {
      // A tag list names its repository: under the client's name where that differs upstream.
      if (registryRoute?.kind === 'tags' && upstream.rewrite && !upstream.rewrite.names.identity) return sendTagList(ctx, request, reply, upstream, registryRoute.name);
      annotateRequestLog(request, { registry: upstream.registry, repo, cache: 'pass' });
      return forwardUpstream(request, reply, upstream, withLayoverCredentials(ctx, repo, 'pull'));
    }
  }
}

/**
 * Layover's credentials go only with requests for a repository: a path outside the registry API (a
 * Nexus or GitLab REST API on the registry's host) or the catalog would otherwise act, or list, with
 * the account configured for pulls. Those go as the client sent them.
 */
function withLayoverCredentials(ctx: RegistryProxyContext, repo: RepositoryName | undefined, action: 'pull' | 'push'): { auth?: AuthScope } {
  return repo === undefined ? {} : { auth: ctx.upstreamAuth.for(repo, action) };
}
