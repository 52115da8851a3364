import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { Fill } from '../cache/blob-cache.js';
import type { Digest } from '../registry/digest.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import { OciError } from '../registry/oci-errors.js';
import { parseByteRange } from './byte-range.js';
import { whenReadable } from './read-guard.js';
import { answerBlobRedirect, isBlobRedirect } from './redirects/blob-redirect.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import { forwardUpstream, unreachable } from './upstream-request.js';
import type { UpstreamTarget } from './upstream-target.js';

const OCTET_STREAM = 'application/octet-stream';

/**
 * GET/HEAD of a blob. Hits come from disk, verified at commit; HEAD misses
 * stay HEADs upstream; a GET miss starts (or joins) the one fill of that
 * digest and every client reads from the growing file. Bytes the cache
 * already has (stored or being filled) go only to a client that may read this
 * repository (src/access/).
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

/** serveBlob once access is settled: whatever the cache holds may be sent; anything else goes upstream. */
function serveReadable(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest): FastifyReply {
  const log: RequestLogFields = { registry: target.registry, repo: name, digest };
  const entry = request.method === 'HEAD' && ctx.config.allowPush ? undefined : ctx.cache.stat(digest);
  if (entry) {
    const range = parseByteRange(request.headers.range, entry.size);
    if (range === 'unsatisfiable') {
      annotateRequestLog(request, { ...log, cache: 'hit' });
      return rangeNotSatisfiable(reply, entry.size);
    }
    reply.header('content-type', entry.mediaType ?? OCTET_STREAM).header('docker-content-digest', digest).header('accept-ranges', 'bytes');
    if (request.method === 'HEAD') {
      annotateRequestLog(request, { ...log, cache: 'hit', bytes: 0 });
      return reply.header('content-length', entry.size).send();
    }
    const read = ctx.cache.read(digest, range ?? undefined);
    if (read) {
      const length = range ? range.end - range.start + 1 : entry.size;
      annotateRequestLog(request, { ...log, cache: 'hit', bytes: length });
      if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${entry.size}`);
      return reply.header('content-length', length).send(read.stream);
    }
    // Evicted between stat and read: fall through to a miss.
  }

  // A download in progress (or committing) already knows the blob: HEAD and ranges need no upstream.
  const filling = ctx.cache.activeFill(digest);
  const partial = request.method === 'HEAD' ? !ctx.config.allowPush : request.headers.range !== undefined;
  if (filling && filling.meta.size !== undefined && partial) {
    return sendFillPart(request, reply, filling, filling.meta.size, log);
  }

  if (request.method === 'HEAD' || request.headers.range) {
    annotateRequestLog(request, { ...log, cache: 'pass' });
    return forwardUpstream(request, reply, target, {
      identity: true,
      auth: ctx.upstreamAuth.for(name),
      onResponse: (res) => (isBlobRedirect(res) ? answerBlobRedirect({ ctx, request, reply, res, target, name, digest }) : void reply.send(res.stream)),
    });
  }

  const active = ctx.cache.activeFill(digest);
  if (active) return sendFill(request, reply, active, log);
  const pending = ctx.pendingFills.get(digest);
  if (pending) {
    // Decide again once it is known: follow the fill, or (no fill came of it) ask upstream ourselves.
    void pending.then(() => serveBlob(ctx, request, reply, target, name, digest));
    return reply;
  }
  return fetchMiss(ctx, request, reply, target, name, digest, log);
}

/** The one upstream GET for a digest; its 200 becomes the fill every other client of that digest reads. */
function fetchMiss(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, digest: Digest, log: RequestLogFields): FastifyReply {
  const settle = ctx.pendingFills.begin(digest);
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
      const length = Number(res.headers['content-length']);
      const fill = ctx.cache.fill(digest, res.stream, {
        ...(Number.isSafeInteger(length) && length >= 0 ? { size: length } : {}),
        mediaType: headerValue(res.headers['content-type']) ?? null,
        kind: 'blob',
        source: `${target.registry}/${name}`,
      });
      settle(fill);
      recordFetched(ctx, request, target, name, digest);
      annotateRequestLog(request, { bytes: fill.meta.size });
      return void reply.send(fill.reader());
    },
  });
}

/** Upstream gave this client the blob (or sent it to storage for it): the digest exists in `name`. */
function recordFetched(ctx: ProxyContext, request: FastifyRequest, target: UpstreamTarget, name: RepositoryName, digest: Digest): void {
  void ctx.readAccess.recordFetched(target, name, { kind: 'blob', digest }, request.headers.authorization, request.log).catch((error: unknown) => {
    request.log.warn({ err: error, digest }, 'recording where a blob came from failed');
  });
}

function sendFill(request: FastifyRequest, reply: FastifyReply, fill: Fill, log: RequestLogFields): FastifyReply {
  annotateRequestLog(request, { ...log, cache: 'miss', bytes: fill.meta.size, joined: true });
  reply.code(200).header('content-type', fill.meta.mediaType ?? OCTET_STREAM).header('docker-content-digest', fill.digest);
  if (fill.meta.size !== undefined) reply.header('content-length', fill.meta.size);
  const stream: Readable = fill.reader();
  return reply.send(stream);
}

/** HEAD or a Range GET answered from a fill whose size is known. */
function sendFillPart(request: FastifyRequest, reply: FastifyReply, fill: Fill, size: number, log: RequestLogFields): FastifyReply {
  const range = request.method === 'HEAD' ? null : parseByteRange(request.headers.range, size);
  annotateRequestLog(request, { ...log, cache: 'miss', joined: true });
  if (range === 'unsatisfiable') return rangeNotSatisfiable(reply, size);
  reply.header('content-type', fill.meta.mediaType ?? OCTET_STREAM).header('docker-content-digest', fill.digest).header('accept-ranges', 'bytes');
  if (request.method === 'HEAD') return reply.header('content-length', size).send();
  if (!range) return reply.header('content-length', size).send(fill.reader());
  annotateRequestLog(request, { bytes: range.end - range.start + 1 });
  return reply
    .code(206)
    .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
    .header('content-length', range.end - range.start + 1)
    .send(fill.reader(range));
}

/** 416 with the blob's size (RFC 9110 §15.5.17) and the OCI error body every registry route answers with. */
export function rangeNotSatisfiable(reply: FastifyReply, size: number): FastifyReply {
  const body = new OciError('RANGE_INVALID', `the range is outside the blob's ${size} bytes`).toBody();
  return reply.code(416).header('content-range', `bytes */${size}`).header('content-type', 'application/json').send(JSON.stringify(body));
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
