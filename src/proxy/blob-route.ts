import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { PendingRead } from '../cache/blob-store.js';
import { BlobStoreUnavailableError, type Fill, FillError } from '../cache/blob-cache.js';
import type { Digest } from '../registry/digest.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { rangeNotSatisfiable, setBlobHeaders } from './blob-headers.js';
import { parseByteRange } from './byte-range.js';
import { whenReadable } from './read-guard.js';
import { sendSmallBlob, SMALL_BLOB_BYTES } from './small-blob.js';
import { answerBlobRedirect, isBlobRedirect } from './redirects/blob-redirect.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import { failReply } from './error-handler.js';
import { fleetTurn, followPeerFill } from './peer-fill.js';
import { clearUpstreamHeaders, forwardUpstream, unreachable, type UpstreamResponse } from './upstream-request.js';
import { BAD_BODY, countBadBody, NOT_KEPT } from './bad-bodies.js';
import { endsOnlyByClosing, whileWaiting } from './body-framing.js';
import type { UpstreamTarget } from './upstream-target.js';

/**
 * How long a presigned storage URL (BLOB_REDIRECT=presigned) may be used to start a download: long
 * enough for a client to follow the redirect, short enough that a leaked URL is soon useless.
 */
const PRESIGNED_SECONDS = 300;
/** The debug line of a range request that waits for a download's verification (tests wait for it). */
export const RANGE_WAITS = 'range request waits for the download to be verified';

/**
 * GET/HEAD of a blob. Hits come from the blob store, verified at commit; HEAD misses
 * stay HEADs upstream; a GET miss starts (or joins) the one fill of that
 * digest and every client reads from the growing file. Bytes the cache
 * already has (stored or being filled) go only to a client that may read this
 * repository (src/access/). Every successful blob answer, hit or miss, carries the same headers
 * (setBlobHeaders): nothing of the upstream's own (cookies, encodings, its ETag) reaches a client.
 */
export function serveBlob(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest): FastifyReply {
  // With pushes on, a HEAD is how a pusher asks whether *this* repository has
  // the blob; the cache only knows the digest exists somewhere, so ask upstream.
  const skipCache = request.method === 'HEAD' && ctx.config.allowPush;
  if (!skipCache && (ctx.cache.stat(digest) || ctx.cache.activeFill(digest))) {
    return whenReadable(ctx, request, reply, target, name, { kind: 'blob', digest }, () => serveReadable(ctx, request, reply, target, name, digest));
  }
  return serveReadable(ctx, request, reply, target, name, digest);
}

/**
 * serveBlob once access is settled: whatever the cache holds may be sent; anything else goes upstream.
 * `streamed`: a small blob is streamed from its store like any other (its bytes could not be read whole).
 */
function serveReadable(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest, streamed = false): FastifyReply {
  const log: RequestLogFields = { registry: target.registry, repo: name, digest };
  const entry = request.method === 'HEAD' && ctx.config.allowPush ? undefined : ctx.cache.stat(digest);
  if (entry) {
    const range = parseByteRange(request.headers.range, entry.size);
    annotateRequestLog(request, { ...log, cache: 'hit' });
    if (range === 'unsatisfiable') return reply.send(rangeNotSatisfiable(entry.size));
    if (request.method === 'HEAD') {
      annotateRequestLog(request, { bytes: 0 });
      return setBlobHeaders(reply, digest, entry.size).send();
    }
    if (ctx.config.blobRedirect === 'presigned') return redirectToStorage(ctx, request, reply, target, name, digest);
    if (!range && !streamed && entry.size <= SMALL_BLOB_BYTES) {
      return sendSmallBlob(ctx, request, reply, digest, {
        gone: () => serveReadable(ctx, request, reply, target, name, digest),
        unreadable: () => serveReadable(ctx, request, reply, target, name, digest, true),
      });
    }
    const read = ctx.cache.read(digest, range ?? undefined);
    if (read) {
      const length = range ? range.end - range.start + 1 : entry.size;
      annotateRequestLog(request, { bytes: length });
      if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${entry.size}`);
      setBlobHeaders(reply, digest, length);
      // The file may be gone under the index (removed by hand, lost on disk): the cache then drops the
      // entry and this request becomes a miss, rather than an error after a 200 is promised. A store that
      // cannot be read at all (the bucket is down) keeps its entry; this client gets the upstream's bytes.
      return sendOnceOpen(read.stream, reply, {
        missing: () => serveReadable(ctx, request, clearReply(reply), target, name, digest),
        unreadable: (error) => {
          request.log.warn({ err: error, digest }, 'cache: the blob store cannot be read; passing the upstream answer through');
          passThrough(ctx, request, clearReply(reply), { target, name, digest }, log);
        },
      });
    }
    // Evicted between stat and read: fall through to a miss.
  }

  // A download in progress (or committing) already knows the blob: HEAD and ranges need no upstream.
  const filling = ctx.cache.activeFill(digest);
  const partial = request.method === 'HEAD' ? !ctx.config.allowPush : request.headers.range !== undefined;
  if (filling && filling.meta.size !== undefined && partial) {
    return sendFillPart(ctx, request, reply, { target, name, digest }, filling, filling.meta.size, log);
  }

  if (request.method === 'HEAD' || request.headers.range) return passThrough(ctx, request, reply, { target, name, digest }, log);

  const active = ctx.cache.activeFill(digest);
  if (active) return sendFill(ctx, request, reply, { target, name, digest }, active, log);
  const pending = ctx.pendingFills.get(digest);
  if (pending) {
    // Decide again once it is known: follow the fill, or (no fill came of it) ask upstream ourselves.
    pending.then(() => serveBlob(ctx, request, reply, target, name, digest)).catch((error: unknown) => failReply(request, reply, error));
    return reply;
  }
  return fetchMiss(ctx, request, reply, target, name, digest, log);
}

/** The request as it came, to the upstream, and its answer back uncached. */
function passThrough(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, { target, name, digest }: BlobAsked, log: RequestLogFields): FastifyReply {
  annotateRequestLog(request, { ...log, cache: 'pass' });
  return forwardUpstream(request, reply, target, {
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onResponse: (res) => (isBlobRedirect(res) ? answerBlobRedirect({ ctx, request, reply, res, target, name, digest }) : passBlob(reply, res, digest)),
  });
}

/**
 * A GET miss: the one upstream GET for a digest, whose 200 becomes the fill every other client of that
 * digest reads. Replicas of a shared index first settle which of them fetches it (src/peers/): the
 * others follow that replica's fill.
 */
function fetchMiss(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest, log: RequestLogFields): FastifyReply {
  const settle = ctx.pendingFills.begin(digest);
  const fleet = ctx.fleet;
  if (!fleet) return fetchUpstream(ctx, request, reply, { target, name, digest }, log, settle);
  fleetTurn(fleet, ctx.cache, request, digest, target.origin, settle)
    .then((turn) => {
      if ('again' in turn) return void serveBlob(ctx, request, reply, target, name, digest);
      if ('fetch' in turn) {
        // A client gone while the fleet decided: its turn is given back.
        if (reply.raw.destroyed) return turn.fetch(undefined);
        try {
          return void fetchUpstream(ctx, request, reply, { target, name, digest }, log, turn.fetch);
        } catch (error) {
          // Never leave this replica's other clients of the digest waiting on a fetch that did not start.
          turn.fetch(undefined);
          throw error;
        }
      }
      const again = (): void => void serveBlob(ctx, request, reply, target, name, digest);
      whenReadable(ctx, request, reply, target, name, { kind: 'blob', digest }, () => followPeerFill(fleet, request, reply, { digest, registry: target.registry }, turn.follow, log, again));
    })
    .catch((error: unknown) => failReply(request, reply, error));
  return reply;
}

/** The upstream GET itself; `settle` learns whether a fill came of it. */
function fetchUpstream(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, { target, name, digest }: BlobAsked, log: RequestLogFields, settle: (fill: Fill | undefined) => void): FastifyReply {
  // reply-from drops the upstream answer of a client that went away before it came.
  reply.raw.once('close', () => settle(ctx.cache.activeFill(digest)));
  annotateRequestLog(request, { ...log, cache: 'miss' });
  return forwardUpstream(request, reply, target, {
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onUnreachable: (error) => {
      settle(undefined);
      void reply.send(unreachable(target, error));
    },
    onResponse: (res) => {
      // A storage redirect: never cached itself; rewritten to docker.proxy or followed (src/proxy/redirects/).
      if (isBlobRedirect(res)) {
        recordFetched(ctx, request, target, name, digest);
        return answerBlobRedirect({ ctx, request, reply, res, target, name, digest, settle });
      }
      if (res.statusCode !== 200) {
        // Not ours to share: another client may hold other credentials.
        settle(undefined);
        return void reply.send(res.stream);
      }
      if (ctx.cache.activeFill(digest)) {
        // Another download of the digest began meanwhile (a storage download went on without its client,
        // whose slot was let go): its bytes go to this client only as a cached copy's would, access checked.
        settle(undefined);
        res.stream.destroy();
        clearUpstreamHeaders(reply);
        return void serveBlob(ctx, request, reply, target, name, digest);
      }
      const length = Number(res.headers['content-length']);
      let fill: Fill;
      try {
        // The upstream's Content-Type describes its answer, not the bytes: blob answers are always octet-stream.
        // The fill is the body's only reader, and undici's chunks are each a buffer of its own: freed once on disk.
        const meta = { ...(Number.isSafeInteger(length) && length >= 0 ? { size: length } : {}), mediaType: null, kind: 'blob' as const, source: `${target.registry}/${name}` };
        fill = ctx.cache.fill(digest, res.stream, meta, { freesChunks: true });
      } catch (error) {
        // Shutting down: the answer came after the cache closed.
        throw error instanceof FillError && error.reason === 'closed' ? new OciError('UNAVAILABLE', 'Layover is shutting down', undefined, { cause: error }) : error;
      } finally {
        settle(ctx.cache.activeFill(digest));
      }
      annotateRequestLog(request, { bytes: fill.meta.size });
      clearUpstreamHeaders(reply);
      if (endsOnlyByClosing(request, fill.meta.size)) {
        serveAfterVerification(ctx, request, reply, { target, name, digest }, fill).catch((error: unknown) => failReply(request, reply, error));
      } else {
        // The client's headers leave now (the reader sends them before any byte has come): the bookkeeping waits.
        setBlobHeaders(reply, digest, fill.meta.size).send(fill.reader());
      }
      countBadBody(ctx.metrics, target.registry, fill);
      recordFetched(ctx, request, target, name, digest);
      // Only verified bytes make this upstream a holder of the digest (ReadAccess: whose word is taken).
      fill.done.then(() => ctx.readAccess.recordHeld(target, { kind: 'blob', digest })).catch(() => undefined);
    },
  });
}

/** Upstream gave this client the blob (or sent it to storage for it): the digest exists in `name`. */
function recordFetched(ctx: ProxyContext, request: FastifyRequest, target: UpstreamTarget, name: RepositoryName, digest: Digest): void {
  void ctx.readAccess.recordFetched(target, name, { kind: 'blob', digest }, request.headers.authorization, request.log).catch((error: unknown) => {
    request.log.warn({ err: error, digest }, 'recording where a blob came from failed');
  });
}

function sendFill(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, asked: BlobAsked, fill: Fill, log: RequestLogFields): FastifyReply {
  annotateRequestLog(request, { ...log, cache: 'miss', bytes: fill.meta.size, joined: true });
  if (endsOnlyByClosing(request, fill.meta.size)) {
    serveAfterVerification(ctx, request, reply, asked, fill).catch((error: unknown) => failReply(request, reply, error));
    return reply;
  }
  const stream: Readable = fill.reader();
  return setBlobHeaders(reply.code(200), fill.digest, fill.meta.size).send(stream);
}

interface BlobAsked {
  target: UpstreamTarget;
  name: RepositoryName;
  digest: Digest;
}

/**
 * HEAD or a Range GET answered from a fill whose size is known. A range that reaches the end of the
 * blob follows the fill like a full-body reader: its final byte comes only after verification, so a
 * bad download never completes it, and a client resuming a download (containerd sends `bytes=N-`)
 * gets its bytes as they arrive. A range that ends sooner would be complete before anything was
 * verified: it waits for the verification and is then served from the cache.
 */
function sendFillPart(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, asked: BlobAsked, fill: Fill, size: number, log: RequestLogFields): FastifyReply {
  const range = request.method === 'HEAD' ? null : parseByteRange(request.headers.range, size);
  annotateRequestLog(request, { ...log, cache: 'miss', joined: true });
  if (range === 'unsatisfiable') return reply.send(rangeNotSatisfiable(size));
  if (request.method === 'HEAD') return setBlobHeaders(reply, fill.digest, size).send();
  if (!range) return setBlobHeaders(reply, fill.digest, size).send(fill.reader());
  if (range.end < size - 1 && !fill.verified) {
    request.log.debug({ digest: fill.digest, range: request.headers.range }, RANGE_WAITS);
    serveAfterVerification(ctx, request, reply, asked, fill).catch((error: unknown) => failReply(request, reply, error));
    return reply;
  }
  annotateRequestLog(request, { bytes: range.end - range.start + 1 });
  return setBlobHeaders(reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`), fill.digest, range.end - range.start + 1).send(fill.reader(range));
}

/** Once the fill is verified the cache answers (a hit); a fill that proved the upstream's bytes wrong is the client's error too. */
async function serveAfterVerification(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, { target, name, digest }: BlobAsked, fill: Fill): Promise<void> {
  try {
    await whileWaiting(request, fill.done);
  } catch (error) {
    if (error instanceof FillError && BAD_BODY.has(error.reason)) {
      throw new OciError('DIGEST_INVALID', `the blob from ${target.registry} does not match its digest`, { digest, reason: error.reason }, { status: 502, cause: error });
    }
    // The cache cannot hold the blob (longer than its cap, or the disk is full): a new fill would end
    // the same way, so this client is answered as an uncached request is.
    if (error instanceof FillError && NOT_KEPT.has(error.reason)) {
      if (!reply.raw.destroyed) passThrough(ctx, request, reply, { target, name, digest }, { registry: target.registry, repo: name, digest });
      return;
    }
    // Dropped for another reason (a stall, shutdown): decide again, as if it had never been.
  }
  if (reply.raw.destroyed) return;
  serveBlob(ctx, request, reply, target, name, digest);
}

/**
 * An upstream answer to a HEAD or Range passed through uncached: a success in the blob headers, anything
 * else as it came. A whole body of no known length is not passed to an HTTP/1.0 client: unverified, it
 * would end by the close whether or not it was whole.
 */
function passBlob(reply: FastifyReply, res: UpstreamResponse, digest: Digest): void {
  if (res.statusCode !== 200 && res.statusCode !== 206) return void reply.send(res.stream);
  const contentLength = Number(res.headers['content-length']);
  const length = Number.isSafeInteger(contentLength) && contentLength >= 0 ? contentLength : undefined;
  if (res.statusCode === 200 && reply.request.method === 'GET' && endsOnlyByClosing(reply.request, length)) {
    res.stream.on('error', () => undefined).destroy();
    return void reply.send(new OciError('UNAVAILABLE', 'the upstream sent this blob without a length, which an HTTP/1.0 client cannot tell whole from cut short: ask over HTTP/1.1', { digest }, { status: 502 }));
  }
  const contentRange = res.headers['content-range'];
  clearUpstreamHeaders(reply);
  setBlobHeaders(reply, digest, length);
  if (res.statusCode === 206 && typeof contentRange === 'string') reply.header('content-range', contentRange);
  void reply.send(res.stream);
}

/**
 * A hit answered with a 307 to a short-lived presigned URL of the object, so that the replica does not
 * carry the bytes (the client must be able to reach the storage endpoint). The client's Range goes
 * with it to the storage.
 */
function redirectToStorage(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest): FastifyReply {
  ctx.cache
    .presignedUrl(digest, PRESIGNED_SECONDS)
    .then((url) => {
      // Evicted since the stat, or gone from the store: a miss now.
      if (url === null) return void serveReadable(ctx, request, reply, target, name, digest);
      annotateRequestLog(request, { bytes: 0, redirect: 'presigned' });
      // The URL is signed for a short time: no cache may keep the redirect longer.
      void reply.code(307).header('location', url).header('cache-control', 'no-store').header('docker-content-digest', digest).header('content-length', 0).send();
    })
    .catch((error: unknown) => {
      if (!(error instanceof BlobStoreUnavailableError)) return failReply(request, reply, error);
      // The bucket is down: a redirect there would fail the pull; the upstream's bytes will not.
      request.log.warn({ err: error, digest }, 'cache: the blob store cannot be reached; passing the upstream answer through instead of a redirect');
      passThrough(ctx, request, reply, { target, name, digest }, { registry: target.registry, repo: name, digest });
    });
  return reply;
}

/**
 * Sends a blob stream once its file or object is open; if it cannot be opened because it is gone,
 * `missing` answers instead, and `unreadable` for any other failure to open it.
 */
function sendOnceOpen(
  stream: Readable & Partial<PendingRead>,
  reply: FastifyReply,
  { missing, unreadable }: { missing: () => unknown; unreadable: (error: Error) => unknown },
): FastifyReply {
  if (stream.pending !== true) return reply.send(stream);
  const opened = (): void => {
    stream.off('error', failed);
    void reply.send(stream);
  };
  const failed = (error: NodeJS.ErrnoException): void => {
    stream.off('ready', opened);
    try {
      if (error.code === 'ENOENT') missing();
      else unreadable(error);
    } catch (thrown) {
      void reply.send(thrown);
    }
  };
  stream.once('ready', opened).once('error', failed);
  return reply;
}

/** A reply whose headers were set for an answer it will not give. */
function clearReply(reply: FastifyReply): FastifyReply {
  clearUpstreamHeaders(reply);
  return reply.code(200);
}
