import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { headTag, type TagHeadRequest } from './manifest-budget.js';

/** What a tag resolved to for one Accept key, kept for the tier's time and as a stale fallback. */
export interface TagRecord {
  digest: Digest;
  fetchedAt: number;
  /**
   * A HEAD in the background saw the tag move to this digest, which the cache does not hold: the
   * next pull fetches it instead of being served the old one first, however low the budget.
   */
  moved?: Digest;
}

/** The debug line of a background revalidation (tests wait for it). */
export const TAG_REVALIDATED = 'tag revalidated in the background';

/** Background revalidations at once, per cache: a burst of stale tags cannot open a connection each. */
const MAX_BACKGROUND_REVALIDATIONS = 64;
/** Tag keys being revalidated, per cache (one app's, so tests and replicas in one process count apart). */
const revalidating = new WeakMap<object, Set<string>>();

/**
 * The tag `key` names `digest` now, and the cache holds that manifest: the tag's record says so
 * (fresh from now), and the digest is a member of the repository, since the upstream just named it
 * there to this request's credentials.
 */
export async function adoptCachedDigest(asked: TagHeadRequest, key: string, digest: Digest, log: FastifyBaseLogger): Promise<void> {
  const { ctx, target, name } = asked;
  await ctx.readAccess.recordFetched(target, name, { kind: 'manifest', digest }, asked.caller.authorization, log);
  await ctx.cache.setRecord<TagRecord>(key, { digest, fetchedAt: Date.now() });
}

/**
 * Asks the upstream with a HEAD (no pull spent) what a tag names now, after its cached manifest was
 * served first: a digest the cache holds refreshes the record; another one is noted as `moved`, so
 * the next pull fetches it. Once per tag at a time; failures are logged and change nothing.
 */
export function revalidateInBackground(asked: TagHeadRequest, key: string, log: FastifyBaseLogger): void {
  let running = revalidating.get(asked.ctx.cache);
  if (!running) revalidating.set(asked.ctx.cache, (running = new Set()));
  if (running.has(key) || running.size >= MAX_BACKGROUND_REVALIDATIONS) return;
  const keys = running;
  keys.add(key);
  revalidate(asked, key, log)
    .catch((error: unknown) => log.warn({ err: error, registry: asked.target.registry, repo: asked.name, ref: asked.tag }, 'revalidating a tag in the background failed'))
    .finally(() => keys.delete(key));
}

async function revalidate(asked: TagHeadRequest, key: string, log: FastifyBaseLogger): Promise<void> {
  const { ctx, target, name, tag } = asked;
  const head = await headTag(asked);
  const where = { registry: target.registry, repo: name, ref: tag };
  if (head.kind !== 'digest') {
    log.info({ ...where, outcome: head.kind === 'other' ? head.status : head.kind }, 'background revalidation of a tag got no digest: the cached manifest stays');
    return;
  }
  const cached = ctx.cache.stat(head.digest)?.kind === 'manifest';
  if (cached) await adoptCachedDigest(asked, key, head.digest, log);
  else {
    const record = ctx.cache.getRecord<TagRecord>(key);
    if (record && record.moved !== head.digest) await ctx.cache.setRecord<TagRecord>(key, { ...record, moved: head.digest });
  }
  log.debug({ ...where, digest: head.digest, cached }, TAG_REVALIDATED);
}
