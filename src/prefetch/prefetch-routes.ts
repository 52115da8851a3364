import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';
import { OciError } from '../registry/oci-errors.js';
import { InvalidReferenceError, parsePlatform, type Platform } from './image-reference.js';
import { Prefetcher, type PrefetchRequest } from './prefetcher.js';
import type { PrefetchLine } from './prefetch-progress.js';

/** Images in one request: a rollout's list, not a registry's catalogue. */
const MAX_IMAGES = 200;
const MAX_REFERENCE_LENGTH = 512;
/** Log lines tests wait for. */
export const PREFETCH_CLIENT_GONE = 'prefetch: the client went away; nothing new is started';
export const PREFETCH_DONE = 'prefetch done';

/** Bytes of a prefetch request's body. */
const PREFETCH_BODY_LIMIT = 128 * 1024;

/**
 * POST /admin/prefetch `{images: [...], platform?: "os/arch", referrers?: bool}` (admins only, see
 * src/admin/admin-access.ts): pulls the images into the cache and answers with NDJSON progress
 * lines (./prefetch-progress.ts), the last one a summary with ok and failed per image. A client
 * that hangs up stops new manifests and blobs from starting; those begun run to their end, as the
 * fills they feed belong to the cache. Layover stopping ends the prefetch at once.
 */
export async function prefetchRoutes(app: FastifyInstance, context: OperationsContext): Promise<void> {
  const prefetcher = new Prefetcher({ https: context.https, config: context.config, cache: context.cache });
  const stopping = new AbortController();
  app.addHook('preClose', async () => stopping.abort(new Error('Layover is stopping')));

  // Checked before the body is read, which a stranger's request never is; 200 references of 512 characters fit.
  app.post('/admin/prefetch', { onRequest: context.access.guard('api'), bodyLimit: PREFETCH_BODY_LIMIT }, async (request, reply) => {
    const asked = prefetchRequest(request.body);
    const out = new PassThrough();
    const gone = new AbortController();
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      gone.abort(new Error('the client went away'));
      request.log.info(PREFETCH_CLIENT_GONE);
    });
    const write = (line: PrefetchLine): void => {
      if (!out.destroyed && !out.writableEnded) out.write(`${JSON.stringify(line)}\n`);
    };
    prefetcher
      .run(asked, write, { stopStarting: gone.signal, abort: stopping.signal })
      .then((summary) => {
        request.log.info({ images: asked.images.length, ok: summary.ok.length, failed: summary.failed, bytes: summary.totals.bytes, stopped: summary.stopped }, PREFETCH_DONE);
        out.end();
      })
      .catch((error: unknown) => {
        request.log.error({ err: error }, 'prefetch failed');
        out.end();
      });
    return reply.header('content-type', 'application/x-ndjson').header('cache-control', 'no-store').send(out);
  });
}

const badRequest = (message: string): OciError => new OciError('UNSUPPORTED', message, undefined, { status: 400 });

/** The request body, checked: a structural fault is a 400; a bad reference fails only its own image. */
export function prefetchRequest(body: unknown): PrefetchRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('expected a JSON object such as {"images": ["docker.io/library/alpine:3.20"]}');
  const { images, platform, referrers } = body as Record<string, unknown>;
  if (!Array.isArray(images) || images.length === 0 || images.length > MAX_IMAGES) throw badRequest(`images: expected a list of 1 to ${MAX_IMAGES} image references`);
  if (!images.every((image) => typeof image === 'string' && image.length <= MAX_REFERENCE_LENGTH)) throw badRequest(`images: every entry must be a string of at most ${MAX_REFERENCE_LENGTH} characters`);
  if (referrers !== undefined && typeof referrers !== 'boolean') throw badRequest('referrers: expected true or false');
  let chosen: Platform | null = null;
  if (platform !== undefined && platform !== null) {
    if (typeof platform !== 'string') throw badRequest('platform: expected OS/ARCH such as linux/arm64');
    try {
      chosen = parsePlatform(platform);
    } catch (error) {
      if (error instanceof InvalidReferenceError) throw badRequest(`platform: ${error.message}`);
      throw error;
    }
  }
  return { images: images as string[], platform: chosen, referrers: referrers === true };
}
