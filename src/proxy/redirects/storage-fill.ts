import type { FastifyReply, FastifyRequest } from 'fastify';
import { AccessRecords } from '../../access/access-records.js';
import { heldSample, sampleRange, showsSample } from '../../access/held-sample.js';
import { type Fill, FillError } from '../../cache/blob-cache.js';
import { BAD_BODY, countBadBody, NOT_KEPT } from '../bad-bodies.js';
import { annotateRequestLog } from '../../log/request-log.js';
import type { Digest } from '../../registry/digest.js';
import { OciError } from '../../registry/oci-errors.js';
import { rangeNotSatisfiable, setBlobHeaders } from '../blob-headers.js';
import { parseByteRange } from '../byte-range.js';
import { endsOnlyByClosing, whileWaiting } from '../body-framing.js';
import { failReply } from '../error-handler.js';
import { fleetTurn, followPeerFill } from '../peer-fill.js';
import type { ProxyContext } from '../proxy-context.js';
import { StorageFetchError, type StorageResponse } from './storage-fetch.js';
import type { StorageRedirects } from './storage-redirects.js';
import { storageSample } from './storage-sample.js';
import { discardBody } from '../../upstream/read-limited.js';

/** One blob to fetch from a storage URL: which digest, where from, on behalf of which registry. */
export interface StorageJob {
  digest: Digest;
  registry: string;
  repo: string;
  target: URL;
  /** The registry's origin, when known (its addresses may serve storage on a private network); else looked up by `registry`. */
  origin?: string;
}

/** The client's error for a failed storage fetch. Messages name the host, never the signed query. */
export function storageError(error: unknown): OciError {
  if (!(error instanceof StorageFetchError)) return new OciError('UNKNOWN', 'storage fetch failed', undefined, { cause: error });
  const detail = { storage: error.host, reason: error.reason, ...(error.status ? { status: error.status } : {}) };
  switch (error.reason) {
    case 'refused':
      return new OciError('DENIED', error.message, detail, { cause: error });
    case 'unreachable':
      return new OciError('UNAVAILABLE', error.message, detail, { cause: error });
    default:
      // The registry's or the storage host's fault: a bad gateway, not the client's.
      return new OciError('UNAVAILABLE', error.message, detail, { cause: error, status: 502 });
  }
}

/** Serves a committed blob (whole, or the client's Range); false when it is not cached. */
export function sendCached(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, digest: Digest): boolean {
  const entry = ctx.cache.stat(digest);
  if (!entry) return false;
  const range = parseByteRange(request.headers.range, entry.size);
  annotateRequestLog(request, { cache: 'hit' });
  if (range === 'unsatisfiable') {
    void reply.send(rangeNotSatisfiable(entry.size));
    return true;
  }
  if (request.method === 'HEAD') {
    void setBlobHeaders(reply, digest, entry.size).code(200).send();
    return true;
  }
  const read = ctx.cache.read(digest, range ?? undefined);
  if (!read) return false;
  const length = range ? range.end - range.start + 1 : entry.size;
  setBlobHeaders(reply, digest, length);
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${entry.size}`);
  else reply.code(200);
  annotateRequestLog(request, { bytes: length });
  void reply.send(read.stream);
  return true;
}

/**
 * Streams a fill in progress (a Range is answered with the whole blob: a 200 is allowed). An HTTP/1.0
 * client of a fill of no known length gets the blob once verified, from the cache, with its length;
 * `again` decides anew for it when the fill was dropped for another reason than its bytes.
 */
export function sendFill(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, fill: Fill, again: () => Promise<void>): void {
  annotateRequestLog(request, { cache: 'miss', bytes: fill.meta.size });
  if (!endsOnlyByClosing(request, fill.meta.size)) return void setBlobHeaders(reply, fill.digest, fill.meta.size).code(200).send(fill.reader());
  sendOnceVerified(ctx, request, reply, fill, again).catch((error: unknown) => failReply(request, reply, error));
}

async function sendOnceVerified(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, fill: Fill, again: () => Promise<void>): Promise<void> {
  let committed = true;
  try {
    await whileWaiting(request, fill.done);
  } catch (error) {
    if (reply.raw.destroyed) return;
    if (error instanceof FillError && BAD_BODY.has(error.reason)) {
      throw new OciError('DIGEST_INVALID', 'the blob from storage does not match its digest', { digest: fill.digest, reason: error.reason }, { status: 502, cause: error });
    }
    // Without a length the blob can reach an HTTP/1.0 client only from the cache, which cannot hold it.
    if (error instanceof FillError && NOT_KEPT.has(error.reason)) {
      throw new OciError('UNAVAILABLE', 'the storage sent this blob without a length, and the cache cannot hold it to give it one: ask over HTTP/1.1', { digest: fill.digest, reason: error.reason }, { status: 502, cause: error });
    }
    committed = false;
  }
  if (reply.raw.destroyed) return;
  // Only this fill's own copy is served as is: any other (another registry's, cached meanwhile) is decided anew, access checked.
  if (!committed || !sendCached(ctx, request, reply, fill.digest)) await again();
}

/**
 * The one storage download of `job.digest`, which becomes its fill: the caller holds the digest's
 * pending slot (`settle`), released with the fill or with nothing. The bytes are verified against
 * the digest like any other fill, so a storage host cannot poison the cache.
 */
export async function fillFromStorage(
  ctx: ProxyContext,
  redirects: StorageRedirects,
  request: FastifyRequest,
  reply: FastifyReply,
  job: StorageJob,
  settle: (fill: Fill | undefined) => void,
): Promise<void> {
  let fill: Fill | undefined;
  let response: StorageResponse | undefined;
  try {
    response = await redirects.fetch(job.target, job.origin ?? job.registry, 'GET');
    annotateRequestLog(request, { storage: response.host, hops: response.hops });
    // Another download of the digest may have begun meanwhile (this one's slot was let go): its bytes
    // go to this client only as any cached copy's would, below, the registry's hold on them checked.
    if (!ctx.cache.activeFill(job.digest)) {
      const length = Number(response.headers['content-length']);
      fill = ctx.cache.fill(
        job.digest,
        response.body,
        {
          ...(Number.isSafeInteger(length) && length >= 0 ? { size: length } : {}),
          // The storage host's Content-Type describes its answer, not the blob.
          mediaType: null,
          kind: 'blob',
          source: `${job.registry}/${job.repo}`,
        },
        // The fill is the body's only reader (undici's): each chunk freed once on disk.
        { freesChunks: true },
      );
      countBadBody(ctx.metrics, job.registry, fill);
      // Only verified bytes make the registry a holder of the digest (src/access/: whose word is taken).
      const origin = originOf(redirects, job);
      fill.done.then(() => new AccessRecords(ctx.cache).addHolder(job.digest, origin)).catch(() => undefined);
    }
  } catch (error) {
    settle(undefined);
    response?.body.destroy();
    request.log.warn({ registry: job.registry, digest: job.digest, storage: job.target.host, err: error }, 'storage fetch failed');
    void reply.send(storageError(error));
    return;
  }
  settle(fill);
  if (!fill) {
    response.body.destroy();
    // Its callers do not wait for it (blob-redirect.ts): a refusal is answered here.
    return serveFromStorage(ctx, redirects, request, reply, job).catch((error: unknown) => failReply(request, reply, error));
  }
  sendFill(ctx, request, reply, fill, () => serveFromStorage(ctx, redirects, request, reply, job));
}

/**
 * A blob that a verified redirect (or a followed one) leads to: from the cache, from the fill in
 * progress, after the pending download of someone else, or by starting the download. HEAD misses
 * become HEADs at the storage host and are not cached.
 */
export async function serveFromStorage(ctx: ProxyContext, redirects: StorageRedirects, request: FastifyRequest, reply: FastifyReply, job: StorageJob): Promise<void> {
  if (ctx.cache.stat(job.digest) || ctx.cache.activeFill(job.digest)) {
    const access = await heldOrShown(ctx, redirects, job);
    // Gone from the cache while asked (evicted, its fill failed): decide again.
    if (access === 'gone') return serveFromStorage(ctx, redirects, request, reply, job);
    if (access === 'refused') {
      annotateRequestLog(request, { cache: 'denied' });
      throw new OciError('DIGEST_INVALID', `the storage ${job.registry} redirected to does not hold the blob's bytes`, { digest: job.digest, storage: job.target.host }, { status: 502 });
    }
  }
  if (sendCached(ctx, request, reply, job.digest)) return;
  if (request.method === 'HEAD') return headFromStorage(redirects, request, reply, job);
  const active = ctx.cache.activeFill(job.digest);
  if (active) {
    // Bytes the upstream sends once, whoever else reads them: counted as served from the cache.
    annotateRequestLog(request, { joined: true });
    return sendFill(ctx, request, reply, active, () => serveFromStorage(ctx, redirects, request, reply, job));
  }
  const pending = ctx.pendingFills.get(job.digest);
  if (pending) {
    await pending;
    return serveFromStorage(ctx, redirects, request, reply, job);
  }
  annotateRequestLog(request, { cache: 'miss' });
  const settle = ctx.pendingFills.begin(job.digest);
  const fleet = ctx.fleet;
  if (!fleet) return fillFromStorage(ctx, redirects, request, reply, job, settle);
  // One storage download per digest for the fleet, as for registry downloads: a fill of this URL's registry is followed.
  const turn = await fleetTurn(fleet, ctx.cache, request, job.digest, originOf(redirects, job), settle);
  if ('again' in turn) return serveFromStorage(ctx, redirects, request, reply, job);
  if ('fetch' in turn) return fillFromStorage(ctx, redirects, request, reply, job, turn.fetch);
  const again = (): void => void serveFromStorage(ctx, redirects, request, reply, job).catch((error: unknown) => failReply(request, reply, error));
  return followPeerFill(fleet, request, reply, { digest: job.digest, registry: job.registry }, turn.follow, { registry: job.registry, repo: job.repo, digest: job.digest }, again);
}

/** How long a registry whose storage could not show a digest's bytes is refused it without asking again. */
const REFUTED_SAMPLE_MS = 10 * 60_000;

/**
 * The cached bytes of a signed URL's digest go to its holder only if its registry gave Layover those
 * bytes, or the storage it redirected to shows them now (a sample, src/access/held-sample.ts): any
 * intercepted registry can have Layover sign a URL for any digest, by redirecting a request for it.
 */
async function heldOrShown(ctx: ProxyContext, redirects: StorageRedirects, job: StorageJob): Promise<'held' | 'refused' | 'gone'> {
  const origin = originOf(redirects, job);
  const records = new AccessRecords(ctx.cache);
  if (records.heldBy(job.digest, { registry: job.registry, origin })) return 'held';
  const held = await heldSample(ctx.cache, job.digest);
  if ('absent' in held) return 'gone';
  if ('unreadable' in held) throw new OciError('UNAVAILABLE', 'the cached blob cannot be read to compare with the storage', { digest: job.digest }, { cause: held.unreadable });
  if (held.sample.size > 0) {
    const key = `${origin}|${job.digest}`;
    const refutedAt = redirects.refutedSamples.get(key);
    if (refutedAt !== undefined && Date.now() - refutedAt < REFUTED_SAMPLE_MS) return 'refused';
    try {
      const answer = await storageSample(redirects)(job.target, origin, sampleRange(held.sample));
      // Nothing shown (a presigned URL expired, a 404) is no guess: only other bytes are remembered.
      if (!answer) return 'refused';
      if (!(await showsSample(answer, held.sample))) {
        redirects.refutedSamples.set(key, Date.now());
        return 'refused';
      }
    } catch (error) {
      throw storageError(error);
    }
  }
  await records.addHolder(job.digest, origin);
  return 'held';
}

/** The origin of the registry a job's URL was signed for. */
function originOf(redirects: StorageRedirects, job: StorageJob): string {
  return job.origin ?? redirects.originOf(job.registry) ?? `https://${job.registry}`;
}

async function headFromStorage(redirects: StorageRedirects, request: FastifyRequest, reply: FastifyReply, job: StorageJob): Promise<void> {
  annotateRequestLog(request, { cache: 'pass' });
  try {
    const response = await redirects.fetch(job.target, job.origin ?? job.registry, 'HEAD');
    discardBody(response.body);
    annotateRequestLog(request, { storage: response.host, hops: response.hops });
    const length = Number(response.headers['content-length']);
    void setBlobHeaders(reply, job.digest, Number.isSafeInteger(length) && length >= 0 ? length : undefined).code(200).send();
  } catch (error) {
    request.log.warn({ registry: job.registry, digest: job.digest, storage: job.target.host, err: error }, 'storage fetch failed');
    void reply.send(storageError(error));
  }
}
