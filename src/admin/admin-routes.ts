import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CacheScopeError, normaliseRegistry, scopeFromBody, scopeName, type CacheScope } from '../cache/cache-scope.js';
import { OciError } from '../registry/oci-errors.js';
import { listImages, type ImageFilter } from './image-listing.js';
import type { OperationsContext } from './operations-context.js';

/** A scope and a flag are a few hundred bytes; anything much bigger is not a request of ours. */
const BODY_LIMIT = 4096;

/** The scope of a purge, pin or unpin body; a malformed one is a 400 in the OCI format. */
function scopeOf(body: unknown): CacheScope {
  try {
    return scopeFromBody(body);
  } catch (error) {
    if (!(error instanceof CacheScopeError)) throw error;
    throw new OciError(error.invalid === 'digest' ? 'DIGEST_INVALID' : 'NAME_INVALID', error.message);
  }
}

function forceOf(body: unknown): boolean {
  const force = typeof body === 'object' && body !== null ? (body as { force?: unknown }).force : undefined;
  if (force !== undefined && typeof force !== 'boolean') throw new OciError('NAME_INVALID', 'force: expected true or false');
  return force === true;
}

/** `maxSize` of a prune body (bytes); undefined: the configured cap. */
function maxSizeOf(body: unknown): number | undefined {
  const maxSize = typeof body === 'object' && body !== null ? (body as { maxSize?: unknown }).maxSize : undefined;
  if (maxSize !== undefined && !(Number.isSafeInteger(maxSize) && (maxSize as number) >= 0)) throw new OciError('SIZE_INVALID', 'maxSize: expected a number of bytes');
  return maxSize as number | undefined;
}

/** ?registry=&repository= of GET /admin/images, normalised as the cache keys them. */
function imageFilter(request: FastifyRequest): ImageFilter {
  const { registry, repository } = request.query as Record<string, unknown>;
  if (registry !== undefined && typeof registry !== 'string') throw new OciError('NAME_INVALID', 'registry: give it once');
  if (repository !== undefined && typeof repository !== 'string') throw new OciError('NAME_INVALID', 'repository: give it once');
  if (registry === undefined) {
    if (repository !== undefined) throw new OciError('NAME_INVALID', 'repository: needs a registry');
    return {};
  }
  if (!normaliseRegistry(registry)) throw new OciError('NAME_INVALID', `registry: expected a host name such as docker.io, got ${JSON.stringify(registry)}`);
  if (repository === undefined) return { registry: normaliseRegistry(registry)! };
  const scope = scopeOf({ registry, repository });
  return scope.kind === 'repository' ? { registry: scope.registry, repository: scope.repository } : {};
}

/**
 * The admin API under /admin/: what the cache holds (images, blobs, stats, pins), purge, pin and unpin.
 * Every route is behind `access.guard('api')` (ADMIN_ALLOW_NETWORKS, then the admin token or an
 * ADMIN_GROUP member); answers are JSON, refusals and errors the OCI error format.
 */
export async function adminRoutes(app: FastifyInstance, { cache, access, config }: OperationsContext): Promise<void> {
  // On request, before any body is read: a stranger's bytes are never parsed.
  const guard = access.guard('api');
  const noStore = { 'cache-control': 'no-store' };

  app.get('/admin/images', { onRequest: guard }, async (request, reply) => {
    return reply.headers(noStore).send({ images: await listImages(cache, imageFilter(request)) });
  });

  app.get('/admin/blobs', { onRequest: guard }, async (_request, reply) => {
    const pinned = await cache.pins.pinnedDigests();
    const blobs = cache.list().map((entry) => ({ ...entry, lastAccess: new Date(entry.lastAccess).toISOString(), created: new Date(entry.created).toISOString(), pinned: pinned.has(entry.digest) }));
    return reply.headers(noStore).send({ blobs });
  });

  app.get('/admin/stats', { onRequest: guard }, async (_request, reply) => {
    return reply.headers(noStore).send({ ...cache.stats(), ...(await cache.pinStats()) });
  });

  app.get('/admin/pins', { onRequest: guard }, async (_request, reply) => {
    const pins = cache.pins.list().map((pin) => ({ scope: scopeName(pin.scope), kind: pin.scope.kind, at: new Date(pin.at).toISOString() }));
    return reply.headers(noStore).send({ pins });
  });

  app.post('/admin/prune', { onRequest: guard, bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const maxSize = maxSizeOf(request.body) ?? config.cacheMaxSize;
    const result = await cache.prune(maxSize);
    request.log.info({ maxSize, removed: result.removed, bytes: result.freedBytes }, 'admin: prune');
    return reply.headers(noStore).send(result);
  });

  app.post('/admin/verify', { onRequest: guard }, async (request, reply) => {
    const result = await cache.verify();
    request.log.info({ checked: result.checked, removed: result.removed.length }, 'admin: verify');
    return reply.headers(noStore).send(result);
  });

  app.post('/admin/purge', { onRequest: guard, bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const scope = scopeOf(request.body);
    const result = await cache.purge(scope, { force: forceOf(request.body) });
    request.log.info({ scope: result.scope, removed: result.removed, bytes: result.freedBytes, kept: result.kept.length }, 'admin: purge');
    return reply.headers(noStore).send(result);
  });

  app.post('/admin/pin', { onRequest: guard, bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const scope = scopeOf(request.body);
    const added = await cache.pins.pin(scope);
    request.log.info({ scope: scopeName(scope), added }, 'admin: pin');
    return reply.headers(noStore).send({ scope: scopeName(scope), pinned: true, added, ...(await cache.catalog.cachedSize(scope)) });
  });

  app.post('/admin/unpin', { onRequest: guard, bodyLimit: BODY_LIMIT }, async (request, reply) => {
    const scope = scopeOf(request.body);
    const removed = await cache.pins.unpin(scope);
    request.log.info({ scope: scopeName(scope), removed }, 'admin: unpin');
    return reply.headers(noStore).send({ scope: scopeName(scope), pinned: false, wasPinned: removed });
  });
}
