import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobEntry } from '../cache/blob-cache.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import { digestAlgorithm, digestOf, parseDigest, type Digest } from '../registry/digest.js';
import { tagTtlMs } from '../registry/manifest-tiers.js';
import { acceptKey } from '../registry/media-types.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import { whenReadable } from './read-guard.js';
import { readLimited } from '../upstream/read-limited.js';
import { clearUpstreamHeaders, forwardUpstream, unreachable, type UpstreamResponse } from './upstream-request.js';
import type { UpstreamTarget } from './upstream-target.js';

/** No real manifest comes near this; a bigger body is hostile or broken (distribution uses 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** What a tag resolved to for one Accept key, kept for the tier's time and as a stale fallback. */
interface TagRecord {
  digest: Digest;
  fetchedAt: number;
}

type Reference = { tag: string } | { digest: Digest };

/**
 * GET/HEAD of a manifest. By digest: immutable, cached once verified. By tag:
 * cached per registry, repository, tag and Accept key for the tier's time when
 * ENABLE_MANIFEST_CACHE is on; whatever the setting, a tag's last answer is
 * served (`stale`) when the upstream fails or rate-limits.
 */
export function serveManifest(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, reference: Reference): FastifyReply {
  const log: RequestLogFields = { registry: target.registry, repo: name, ref: 'tag' in reference ? reference.tag : reference.digest };
  if ('digest' in reference) {
    const entry = manifestEntry(ctx, reference.digest);
    if (entry) return whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: entry.digest }, () => sendCached(ctx, request, reply, entry, { ...log, cache: 'hit' }));
    annotateRequestLog(request, { ...log, cache: request.method === 'HEAD' ? 'pass' : 'miss' });
    if (request.method === 'HEAD') return forwardUpstream(request, reply, target, { auth: ctx.upstreamAuth.for(name) });
    return forwardUpstream(request, reply, target, {
      identity: true,
      auth: ctx.upstreamAuth.for(name),
      onResponse: (res) => void storeAndSend(ctx, request, reply, target, name, res, reference.digest, null),
    });
  }

  const key = `tag:${target.registry}/${name}:${reference.tag}|${acceptKey(request.headers.accept)}`;
  const record = ctx.cache.getRecord<TagRecord>(key);
  const cached = record ? manifestEntry(ctx, record.digest) : undefined;
  const { manifestCache } = ctx.config;
  if (cached && record && manifestCache.enabled && Date.now() - record.fetchedAt < tagTtlMs(reference.tag, manifestCache)) {
    return whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: cached.digest }, () => sendCached(ctx, request, reply, cached, { ...log, cache: 'hit' }));
  }
  const serveStale = (why: string): boolean => {
    if (!cached) return false;
    request.log.warn({ ...log, reason: why }, 'upstream failed: serving the cached manifest');
    clearUpstreamHeaders(reply);
    whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: cached.digest }, () => sendCached(ctx, request, reply, cached, { ...log, cache: 'stale' }));
    return true;
  };
  annotateRequestLog(request, { ...log, cache: 'miss' });
  return forwardUpstream(request, reply, target, {
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onUnreachable: (error) => {
      if (serveStale((error as NodeJS.ErrnoException).code ?? error.message)) return;
      void reply.send(unreachable(target, error));
    },
    onResponse: (res) => {
      if ((res.statusCode >= 500 || res.statusCode === 429) && cached) {
        res.stream.resume();
        serveStale(`upstream answered ${res.statusCode}`);
        return;
      }
      if (res.statusCode !== 200 || request.method === 'HEAD') return void reply.send(res.stream);
      void storeAndSend(ctx, request, reply, target, name, res, null, key);
    },
  });
}

function manifestEntry(ctx: ProxyContext, digest: Digest): BlobEntry | undefined {
  const entry = ctx.cache.stat(digest);
  return entry?.kind === 'manifest' ? entry : undefined;
}

function sendCached(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, entry: BlobEntry, log: RequestLogFields): FastifyReply {
  reply
    .header('content-type', entry.mediaType ?? 'application/vnd.oci.image.manifest.v1+json')
    .header('docker-content-digest', entry.digest)
    .header('etag', `"${entry.digest}"`)
    .header('content-length', entry.size);
  if (request.method === 'HEAD') {
    annotateRequestLog(request, { ...log, bytes: 0 });
    return reply.send();
  }
  const read = ctx.cache.read(entry.digest);
  if (!read) throw new OciError('MANIFEST_UNKNOWN', 'manifest was evicted while being served, retry');
  annotateRequestLog(request, { ...log, bytes: entry.size });
  return reply.send(read.stream);
}

/**
 * Buffers an upstream manifest (bounded), checks it against the digest it was
 * asked by or the one upstream claims, sends it byte-identical and stores it.
 */
async function storeAndSend(
  ctx: ProxyContext,
  request: FastifyRequest,
  reply: FastifyReply,
  target: UpstreamTarget,
  name: RepositoryName,
  res: UpstreamResponse,
  expected: Digest | null,
  tagKey: string | null,
): Promise<void> {
  try {
    const body = await readLimited(res.stream, MAX_MANIFEST_BYTES);
    if (!body) {
      throw new OciError('MANIFEST_INVALID', `manifest from ${target.registry} exceeds ${MAX_MANIFEST_BYTES} bytes`, undefined, { status: 502 });
    }
    const claimedHeader = res.headers['docker-content-digest'];
    const claimed = typeof claimedHeader === 'string' ? parseDigest(claimedHeader) : null;
    const digest = expected ?? claimed ?? digestOf(body);
    const actual = digestOf(body, digestAlgorithm(digest));
    if (actual !== digest || (claimed && claimed !== digest && digestAlgorithm(claimed) === digestAlgorithm(digest))) {
      throw new OciError('DIGEST_INVALID', `manifest from ${target.registry} does not match its digest`, { expected: digest, actual }, { status: 502 });
    }
    annotateRequestLog(request, { bytes: body.length });
    void reply.header('content-length', body.length).header('docker-content-digest', digest).send(body);
    const contentType = res.headers['content-type'];
    await ctx.cache.put(digest, body, {
      size: body.length,
      mediaType: typeof contentType === 'string' ? contentType : null,
      kind: 'manifest',
      source: `${target.registry}/${name}`,
    });
    if (tagKey) await ctx.cache.setRecord<TagRecord>(tagKey, { digest, fetchedAt: Date.now() });
    await ctx.readAccess.recordFetched(target, name, { kind: 'manifest', digest }, request.headers.authorization, request.log);
  } catch (error) {
    if (!reply.sent) return void reply.send(error);
    request.log.error({ err: error, registry: target.registry, repo: name }, 'storing a manifest failed');
  }
}
