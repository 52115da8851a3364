import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BlobEntry } from '../cache/blob-cache.js';
import { annotateRequestLog, type RequestLogFields } from '../log/request-log.js';
import { digestAlgorithm, digestOf, parseDigest, type Digest } from '../registry/digest.js';
import { manifestMediaType } from '../registry/manifest-media-type.js';
import { tagTtlMs } from '../registry/manifest-tiers.js';
import { acceptKey, MAX_MANIFEST_BYTES } from '../registry/media-types.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { BodyDeadlineError, discardBody, readLimited, WHOLE_BODY_DEADLINE_MS } from '../upstream/read-limited.js';
import { asOciError, failReply } from './error-handler.js';
import { upstreamCallerOf } from './layover-authorizes.js';
import type { RegistryProxyContext as ProxyContext } from './proxy-context.js';
import { whenReadable } from './read-guard.js';
import { clearUpstreamHeaders, forwardUpstream, unreachable, type UpstreamResponse } from './upstream-request.js';
import type { UpstreamTarget } from './upstream-target.js';
import { countsPulls, headTag, observeBudgetLater, tooManyRequests, upstreamIdentity, type TagHeadRequest } from './manifest-budget.js';
import { adoptCachedDigest, revalidateInBackground, type TagRecord } from './manifest-revalidation.js';

export { MAX_MANIFEST_BYTES };

type Reference = { tag: string } | { digest: Digest };

/** One manifest request: where it goes and what its log line says so far. */
interface ManifestRequest {
  ctx: ProxyContext;
  request: FastifyRequest;
  reply: FastifyReply;
  target: UpstreamTarget;
  name: RepositoryName;
  log: RequestLogFields;
}

/**
 * GET/HEAD of a manifest. By digest: immutable, cached once verified. By tag:
 * cached per registry, repository, tag and Accept key for the tier's time when
 * ENABLE_MANIFEST_CACHE is on; whatever the setting, a tag's last answer is
 * served (`stale`) when the upstream fails or rate-limits. Cached manifests are
 * served with the type their own bytes declare, whichever registry stored them.
 * On Docker Hub, where each manifest GET is a pull of the budget, a tag is asked
 * for with a HEAD first and a digest the cache holds is served from it (see spendNoPull).
 */
export function serveManifest(ctx: ProxyContext, request: FastifyRequest, reply: FastifyReply, target: UpstreamTarget, name: RepositoryName, reference: Reference): FastifyReply {
  const log: RequestLogFields = { registry: target.registry, repo: name, ref: 'tag' in reference ? reference.tag : reference.digest };
  const asked: ManifestRequest = { ctx, request, reply, target, name, log };
  return 'digest' in reference ? serveByDigest(asked, reference.digest) : serveByTag(asked, reference.tag);
}

function serveByDigest(asked: ManifestRequest, digest: Digest): FastifyReply {
  const entry = manifestEntry(asked.ctx, digest);
  if (!entry) return fetchByDigest(asked, digest);
  // Evicted after the access check: it is a miss after all.
  return whenReadable(asked.ctx, asked.request, asked.reply, asked.target, asked.name, { kind: 'manifest', digest }, async () => {
    if (!(await sendCached(asked, entry, 'hit'))) fetchByDigest(asked, digest);
  });
}

/**
 * A digest the cache does not hold. Only a 200 body is hashed and stored; any other answer keeps its
 * status and error (404 MANIFEST_UNKNOWN, a 401 with its challenge, a 429 with Retry-After), except
 * an upstream failure, which becomes 503 UNAVAILABLE as on the tag path.
 */
function fetchByDigest(asked: ManifestRequest, digest: Digest): FastifyReply {
  const { ctx, request, reply, target, name, log } = asked;
  annotateRequestLog(request, { ...log, cache: request.method === 'HEAD' ? 'pass' : 'miss' });
  return forwardUpstream(request, reply, target, {
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onResponse: (res) => {
      observeBudgetLater(ctx, target, name, upstreamCallerOf(request), res.statusCode, res.headers, request.log);
      if (res.statusCode >= 500) return upstreamFailed(reply, target, res);
      if (res.statusCode !== 200 || request.method === 'HEAD') return void reply.send(res.stream);
      storeAndSend(asked, res, digest, null).catch((error: unknown) => failReply(request, reply, error));
    },
  });
}

/** What the cache knows of a tag for one Accept set: its record, the manifest it names (if cached), and whether its tier still serves it. */
interface TagLookup {
  readonly key: string;
  readonly record: TagRecord | undefined;
  readonly cached: BlobEntry | undefined;
  /** ENABLE_MANIFEST_CACHE is on and the tag's tier keeps the cached manifest: a hit without asking upstream. */
  readonly fresh: boolean;
}

/** The record of what `tag` named, per registry, repository and Accept set. */
export const tagRecordKey = (registry: string, name: RepositoryName, tag: string, accept: string | undefined): string => `tag:${registry}/${name}:${tag}|${acceptKey(accept)}`;

export function lookUpTag(ctx: Pick<ProxyContext, 'cache' | 'config'>, target: UpstreamTarget, name: RepositoryName, tag: string, accept: string | undefined): TagLookup {
  const key = tagRecordKey(target.registry, name, tag, accept);
  const record = ctx.cache.getRecord<TagRecord>(key);
  const cached = record ? manifestEntry(ctx, record.digest) : undefined;
  const { manifestCache } = ctx.config;
  const fresh = cached !== undefined && record !== undefined && manifestCache.enabled && Date.now() - record.fetchedAt < tagTtlMs(tag, manifestCache);
  return { key, record, cached, fresh };
}

function serveByTag(asked: ManifestRequest, tag: string): FastifyReply {
  const { ctx, request, reply, target, name } = asked;
  const { key, record, cached, fresh } = lookUpTag(ctx, target, name, tag, request.headers.accept);
  if (cached && fresh) {
    // A record that names a digest the repository does not hold (a tag record of another registry's,
    // written before ports named registries) is no answer: the tag is asked for.
    return whenReadable(
      ctx,
      request,
      reply,
      target,
      name,
      { kind: 'manifest', digest: cached.digest },
      async () => {
        if (!(await sendCached(asked, cached, 'hit'))) fetchByTag(asked, key, undefined);
      },
      () => fetchByTag(asked, key, undefined),
    );
  }
  // A HEAD is free on Docker Hub and the client's own HEAD goes as it came; a GET is a pull.
  if (countsPulls(target) && request.method === 'GET') {
    spendNoPull(asked, key, tag, record, cached).catch((error: unknown) => failReply(request, reply, error));
    return reply;
  }
  return fetchByTag(asked, key, cached);
}

/**
 * A GET of a Docker Hub tag the cache cannot answer fresh, where every manifest GET is a pull of
 * the budget. With the account's budget low (or exhausted) and the tag cached, the cached manifest
 * goes first and a HEAD in the background revalidates it. Otherwise a HEAD asks which digest the
 * tag names: a digest the cache holds is served from it, and only an unknown one is fetched (by
 * tag, the path every other registry takes).
 */
async function spendNoPull(asked: ManifestRequest, key: string, tag: string, record: TagRecord | undefined, cached: BlobEntry | undefined): Promise<void> {
  const { ctx, request, reply, target, name } = asked;
  const head: TagHeadRequest = { ctx, dispatcher: request.server.upstream, target, name, tag, accept: request.headers.accept, caller: upstreamCallerOf(request) };
  const budget = ctx.dockerHubBudget;
  if (cached && record && !record.moved && budget) {
    let account: string | null = null;
    try {
      account = (await upstreamIdentity(ctx, target, name, head.caller)).account;
    } catch {
      // No identity, no budget to look at: the HEAD below meets the same failure and reports it.
    }
    if (account !== null && budget.isLow(account)) {
      annotateRequestLog(request, { budget: budget.isExhausted(account) ? 'exhausted' : 'low' });
      whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: cached.digest }, async () => {
        if (!(await sendCached(asked, cached, 'stale'))) fetchByTag(asked, key, undefined);
      });
      revalidateInBackground(head, key, request.log);
      return;
    }
  }
  const answer = await headTag(head);
  switch (answer.kind) {
    case 'digest': {
      const entry = manifestEntry(ctx, answer.digest);
      if (!entry) return void fetchByTag(asked, key, cached);
      // The membership is in memory once called: the access check below finds it without asking upstream.
      adoptCachedDigest(head, key, answer.digest, request.log).catch((error: unknown) => request.log.warn({ err: error, registry: target.registry, repo: name }, 'recording a revalidated tag failed'));
      annotateRequestLog(request, { revalidated: 'head' });
      whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: entry.digest }, async () => {
        if (!(await sendCached(asked, entry, 'hit'))) fetchByTag(asked, key, cached);
      });
      return;
    }
    case 'limited':
      if (cached) return serveStale(asked, cached, 'upstream answered 429', answer.error);
      throw answer.error;
    case 'unreachable':
      if (cached) return serveStale(asked, cached, (answer.error as NodeJS.ErrnoException).code ?? answer.error.message, unreachable(target, answer.error));
      throw unreachable(target, answer.error);
    case 'other':
      return void fetchByTag(asked, key, cached);
  }
}

/** The tag's last answer, when the upstream failed or rate-limits; `failure` if the cache lost it meanwhile. */
function serveStale(asked: ManifestRequest, cached: BlobEntry, why: string, failure: OciError): void {
  const { ctx, request, reply, target, name, log } = asked;
  request.log.warn({ ...log, reason: why }, 'upstream failed: serving the cached manifest');
  clearUpstreamHeaders(reply);
  whenReadable(ctx, request, reply, target, name, { kind: 'manifest', digest: cached.digest }, async () => {
    if (!(await sendCached(asked, cached, 'stale'))) throw failure;
  });
}

/** Asks upstream for a tag; when it fails or rate-limits, `cached` (the tag's last answer) is served instead. */
function fetchByTag(asked: ManifestRequest, key: string, cached: BlobEntry | undefined): FastifyReply {
  const { ctx, request, reply, target, name, log } = asked;
  annotateRequestLog(request, { ...log, cache: 'miss' });
  return forwardUpstream(request, reply, target, {
    identity: true,
    auth: ctx.upstreamAuth.for(name),
    onUnreachable: (error) => {
      if (cached) return serveStale(asked, cached, (error as NodeJS.ErrnoException).code ?? error.message, unreachable(target, error));
      void reply.send(unreachable(target, error));
    },
    onResponse: (res) => {
      observeBudgetLater(ctx, target, name, upstreamCallerOf(request), res.statusCode, res.headers, request.log);
      if ((res.statusCode >= 500 || res.statusCode === 429) && cached) {
        discardBody(res.stream);
        return serveStale(asked, cached, `upstream answered ${res.statusCode}`, res.statusCode === 429 ? tooManyRequests(target, res.headers) : upstreamFailure(target, res.statusCode));
      }
      if (res.statusCode >= 500) return upstreamFailed(reply, target, res);
      if (res.statusCode === 429) {
        discardBody(res.stream);
        return void reply.send(tooManyRequests(target, res.headers));
      }
      if (res.statusCode !== 200 || request.method === 'HEAD') return void reply.send(res.stream);
      storeAndSend(asked, res, null, key, cached).catch((error: unknown) => failReply(request, reply, error));
    },
  });
}

/** The error for an upstream that answered with a server error: the client may retry, as after an outage. */
export function upstreamFailure(target: UpstreamTarget, status: number): OciError {
  return new OciError('UNAVAILABLE', `upstream registry ${target.registry} is failing`, { status });
}

function upstreamFailed(reply: FastifyReply, target: UpstreamTarget, res: UpstreamResponse): void {
  discardBody(res.stream);
  void reply.send(upstreamFailure(target, res.statusCode));
}

/** The cache's entry for `digest` when it holds it as a manifest. */
export function manifestEntry(ctx: Pick<ProxyContext, 'cache'>, digest: Digest): BlobEntry | undefined {
  const entry = ctx.cache.stat(digest);
  return entry?.kind === 'manifest' ? entry : undefined;
}

/**
 * Sends a cached manifest, typed by its own bytes (an old entry may carry the type the first
 * upstream claimed). False when the cache no longer has it: evicted (or its file lost) since it
 * was looked up, before anything was sent.
 */
async function sendCached(asked: ManifestRequest, entry: BlobEntry, cache: 'hit' | 'stale'): Promise<boolean> {
  const { ctx, request, reply, log } = asked;
  let read: Awaited<ReturnType<typeof ctx.cache.readBytes>>;
  try {
    read = await ctx.cache.readBytes(entry.digest, MAX_MANIFEST_BYTES);
  } catch (error) {
    request.log.warn({ ...log, err: error }, 'reading a cached manifest failed');
    return false;
  }
  if (read === undefined) return false;
  if (read === null) throw new OciError('UNKNOWN', `the cached manifest ${entry.digest} exceeds ${MAX_MANIFEST_BYTES} bytes`);
  const body = read.bytes;
  annotateRequestLog(request, { ...log, cache, bytes: request.method === 'HEAD' ? 0 : body.length });
  // Served stale after an upstream's 429 or 5xx, whose status reply-from has already set.
  void reply.code(200).headers(cachedManifestHeaders(entry.digest, body)).send(request.method === 'HEAD' ? undefined : body);
  return true;
}

/** The headers of a cached manifest's answer, GET or HEAD, whichever path sends it (src/proxy/hit-path.ts too). */
export function cachedManifestHeaders(digest: Digest, body: Buffer): Record<string, string | number> {
  return { 'content-type': cachedMediaType(body), 'docker-content-digest': digest, etag: `"${digest}"`, 'content-length': body.length };
}

/**
 * The cache hands out the same Buffer for a manifest held in memory: its type is parsed from its bytes
 * once, not on every hit, and forgotten with the Buffer.
 */
const mediaTypes = new WeakMap<Buffer, string>();
function cachedMediaType(body: Buffer): string {
  let type = mediaTypes.get(body);
  if (type === undefined) {
    type = manifestMediaType(body);
    mediaTypes.set(body, type);
  }
  return type;
}

/** Docker Hub's pull quota on a manifest GET's answer, passed to the client that caused the pull. */
const PULL_QUOTA_HEADERS = ['ratelimit-limit', 'ratelimit-remaining', 'docker-ratelimit-source'] as const;

/** The debug line of a manifest stored after it was sent (tests wait for it: the answer goes first). */
export const MANIFEST_STORED = 'manifest stored';

/**
 * Buffers an upstream manifest (bounded), checks it against the digest it was
 * asked by or the one upstream claims, sends it byte-identical and stores it.
 * When that body fails before anything was sent (cut off, past its deadline, too large, not the
 * digest claimed), `stale` (the tag's last answer) is served instead, as after a 5xx.
 */
async function storeAndSend(asked: ManifestRequest, res: UpstreamResponse, expected: Digest | null, tagKey: string | null, stale?: BlobEntry): Promise<void> {
  const { ctx, request, reply, target, name } = asked;
  try {
    const body = await readLimited(res.stream, MAX_MANIFEST_BYTES, WHOLE_BODY_DEADLINE_MS).catch((error: unknown) => {
      if (error instanceof BodyDeadlineError) throw error;
      // Silent past PROXY_READ_TIMEOUT: a gateway's timeout, as for an answer that never began.
      const silent = (error as { code?: unknown } | null)?.code === 'UND_ERR_BODY_TIMEOUT';
      throw new OciError('UNAVAILABLE', `the answer of upstream registry ${target.registry} ${silent ? 'went silent' : 'broke off'}`, undefined, { status: silent ? 504 : 502, cause: error });
    });
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
    // The headers of a hit, not the upstream's that reply-from copied (its Content-Encoding, ETag, the
    // rest), but for Docker Hub's pull quota: a GET of a manifest is what it counts.
    clearUpstreamHeaders(reply);
    for (const name of PULL_QUOTA_HEADERS) if (typeof res.headers[name] === 'string') void reply.header(name, res.headers[name]);
    void reply.headers(cachedManifestHeaders(digest, body)).send(body);
    const mediaType = cachedMediaType(body);
    await ctx.cache.put(digest, body, { size: body.length, mediaType, kind: 'manifest', source: `${target.registry}/${name}` });
    request.log.debug({ digest, registry: target.registry }, MANIFEST_STORED);
    if (tagKey) await ctx.cache.setRecord<TagRecord>(tagKey, { digest, fetchedAt: Date.now() });
    await ctx.readAccess.recordHeld(target, { kind: 'manifest', digest });
    await ctx.readAccess.recordFetched(target, name, { kind: 'manifest', digest }, request.headers.authorization, request.log);
  } catch (error) {
    if (!reply.sent && stale) return serveStale(asked, stale, error instanceof Error ? error.message : String(error), asOciError(error).oci);
    if (!reply.sent) return void reply.send(error);
    request.log.error({ err: error, registry: target.registry, repo: name }, 'storing a manifest failed');
  }
}
