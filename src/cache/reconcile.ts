import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobStore } from './blob-store.js';
import type { BlobEntry } from './blob-types.js';
import type { CacheLayout } from './cache-layout.js';
import type { IndexContents, IndexStore } from './index-store.js';
import type { Lease } from './lease.js';
import { leaseStillHeld } from './lease-holding.js';
import { abortAbandonedUploads } from './abandoned-uploads.js';
import type { LruIndex } from './lru-index.js';

const ADOPT_CONCURRENCY = 4;
/** The fleet's reconcile runs on one replica at a time (the others only read what they serve). */
export const RECONCILE_LEASE = 'reconcile';
const LEASE_TTL_MS = 60_000;
/** The rows' deletion and each upload's abort need this much of the lease left. */
const STEP_NEEDS_MS = 20_000;
/** Listed objects between two looks at the lease (one page of a bucket listing). */
const RENEW_EVERY = 1_000;
/**
 * On a shared index a row is written before its object is committed (BlobCache.install), so a row without
 * an object may be another replica's fill in its commit step: the last part of at most 8 MiB and the
 * CompleteMultipartUpload (or one PutObject of at most 8 MiB), each cut off after 60 s without progress;
 * a few minutes even on a slow link. Ten minutes covers that and any sane skew between the clocks of the
 * replica that wrote `created` and this one. Such a row costs nothing while it waits: a row becomes a hit
 * only together with its object; a later reconcile drops it once it is older.
 */
export const YOUNG_ROW_MS = 10 * 60_000;

/**
 * Makes the index and the store agree again after a crash (or any unclean stop), before anything is served:
 * - spool files are partial fills: removed;
 * - index rows whose blob is gone (a crash between indexing and the commit): dropped; on a shared index
 *   only once they are older than YOUNG_ROW_MS, since a live replica may be about to commit their object;
 * - blobs with no row (a lost or rebuilt index, a crash between a row's deletion and the blob's): the
 *   store adopts them (files are re-hashed and removed when they do not match their name);
 * - on a shared bucket, multipart uploads of replicas killed mid-fill: aborted when nobody holds the
 *   digest's fill lease (abandoned-uploads.ts).
 * On a shared index the changes are made under the `reconcile` lease: a replica that finds it taken only
 * reads (rows whose object exists, objects it adopts in memory) and leaves the index to the holder.
 * Nothing complete is lost and nothing partial is served. Returns the entries that are good to serve.
 */
export async function reconcile(
  layout: CacheLayout,
  store: BlobStore,
  loaded: IndexContents,
  index: IndexStore,
  logger: FastifyBaseLogger,
): Promise<BlobEntry[]> {
  const started = performance.now();
  const tmpRemoved = await emptyDirectory(layout.tmpDir);
  const shared = index.feed !== undefined;
  // undefined: an index of this replica's own (no lease needed); null: another replica reconciles the fleet.
  const lease = shared ? await takeLease(index, logger) : undefined;
  try {
    const strays = lease === null ? 0 : await store.sweepStrays();
    // A long listing or adoption renews the lease as it goes; once lost, the check before the changes says so.
    const renew = async (): Promise<void> => {
      if (lease) await leaseStillHeld(lease, STEP_NEEDS_MS);
    };
    const stored = new Set<Digest>();
    for await (const digest of store.list()) {
      stored.add(digest);
      if (stored.size % RENEW_EVERY === 0) await renew();
    }

    const live: BlobEntry[] = [];
    const missing: Digest[] = [];
    const indexed = new Set<Digest>();
    const youngBefore = Date.now() - YOUNG_ROW_MS;
    let young = 0;
    for (const entry of loaded.entries) {
      indexed.add(entry.digest);
      if (stored.has(entry.digest)) live.push(entry);
      else if (!shared || entry.created < youngBefore) missing.push(entry.digest);
      else young += 1;
    }

    const unindexed = [...stored].filter((digest) => !indexed.has(digest));
    const { reindexed, refused } = await adoptAll(store, unindexed, renew);

    // Another replica's changes must not be undone by a holder whose lease ran out meanwhile.
    const mayChange = lease === undefined || (lease !== null && (await leaseStillHeld(lease, STEP_NEEDS_MS)));
    let uploads = { aborted: 0, live: 0 };
    if (mayChange) {
      await index.deleteKeys(loaded.invalid);
      await index.deleteEntries(missing);
      // In a shared bucket an object listed without a row may have been committed meanwhile, its row
      // written since the index was loaded: that row is the truth, not a re-indexed guess.
      const unwritten = await index.putEntries(shared ? await stillWithoutRow(index, reindexed) : reindexed);
      if (unwritten.length > 0) {
        // The blobs are verified and stay served; the next open re-indexes them again.
        logger.error({ count: unwritten.length }, 'cache reconcile: re-indexed rows were not written');
      }
      if (lease) uploads = await abortAbandonedUploads(store, index, lease, logger);
    }
    logger.info(
      {
        store: store.kind,
        ...(shared ? { fleet: mayChange ? 'reconciled' : 'left to another replica', youngRowsKept: young, uploadsAborted: uploads.aborted, uploadsLive: uploads.live } : {}),
        entries: live.length + reindexed.length,
        tmpRemoved,
        rowsDropped: mayChange ? missing.length + loaded.invalid.length : 0,
        reindexed: reindexed.length,
        filesRemoved: refused + strays,
        ms: Math.round(performance.now() - started),
      },
      'cache index reconciled',
    );
    return live.concat(reindexed);
  } finally {
    await lease?.release().catch((error: unknown) => logger.warn({ err: error }, 'cache: the reconcile lease was not released; it runs out'));
  }
}

/** What of a serving BlobCache the reconcile of its own index reads and changes. */
export interface ServingCache {
  readonly lru: LruIndex;
  isFilling(digest: Digest): boolean;
  /** This process is deleting the digest's file (an eviction, now or once its readers close). */
  isRemoving(digest: Digest): boolean;
  isClosed(): boolean;
  /** Makes an adopted blob a hit (CommittedBlobs.adopt). */
  insert(entry: BlobEntry): void;
  requestEviction(): void;
}

/**
 * The reconcile of an index this process owns (SQLite), run while the cache already serves: a start
 * with 100,000 blobs spent seconds listing the store before it could answer anything. The spool
 * directory must already be empty (BlobCache.open does that first: fills write there). Safe beside
 * serving because every change checks what the cache did meanwhile:
 * - a row whose blob is missing is dropped only while its entry is still the one loaded (same object):
 *   a commit replaces the entry (and wrote its row; the queue of index writes keeps the order), and a
 *   read that found the file gone or an eviction already removed it. Until then, a read of it finds
 *   the file missing and is answered as a miss (BlobReader), so nothing wrong is ever served;
 * - a blob without a row is adopted only when no fill of it runs, no entry for it appeared and no
 *   eviction is deleting it (a file kept for its readers); its
 *   row is written only while its entry is still the adopted one, so an eviction in between wins.
 *   One case is left: a file that fails its hash is removed by the store, and a fill that commits the
 *   same digest within that moment loses its file; the next read finds it missing and fetches it again.
 * Never rejects; stops early once the cache closes.
 */
export async function reconcileWhileServing(store: BlobStore, loaded: IndexContents, index: IndexStore, logger: FastifyBaseLogger, cache: ServingCache, tmpRemoved: number): Promise<void> {
  const started = performance.now();
  try {
    const strays = await store.sweepStrays();
    const stored = new Set<Digest>();
    for await (const digest of store.list()) stored.add(digest);
    if (cache.isClosed()) return;
    const missing: Digest[] = [];
    const indexed = new Set<Digest>();
    for (const entry of loaded.entries) {
      indexed.add(entry.digest);
      if (stored.has(entry.digest) || cache.lru.get(entry.digest) !== entry) continue;
      cache.lru.delete(entry.digest);
      missing.push(entry.digest);
    }
    // Queued in the same turn as the LRU deletes above: a commit of one of these digests after this
    // writes its row after the delete, not before it.
    await Promise.all([index.deleteEntries(missing), index.deleteKeys(loaded.invalid)]);
    const unindexed = [...stored].filter((digest) => !indexed.has(digest));
    const untouched = (digest: Digest): boolean => !cache.lru.get(digest) && !cache.isFilling(digest) && !cache.isRemoving(digest);
    const { reindexed, refused } = await adoptAll(store, unindexed.filter(untouched), async () => {
      if (cache.isClosed()) throw new ReconcileStopped();
    }, untouched);
    // As the most recently used: their last use is unknown (rare: a lost index, a crash mid-removal).
    for (const entry of reindexed) if (untouched(entry.digest)) cache.insert(entry);
    // Checked and queued in one turn: an eviction or commit after this is queued after these rows.
    const unwritten = await index.putEntries(reindexed.filter((entry) => cache.lru.get(entry.digest) === entry));
    if (unwritten.length > 0) logger.error({ count: unwritten.length }, 'cache reconcile: re-indexed rows were not written');
    if (reindexed.length > 0) cache.requestEviction();
    logger.info(
      {
        store: store.kind,
        entries: cache.lru.count,
        tmpRemoved,
        rowsDropped: missing.length + loaded.invalid.length,
        reindexed: reindexed.length,
        filesRemoved: refused + strays,
        ms: Math.round(performance.now() - started),
      },
      'cache index reconciled',
    );
  } catch (error) {
    if (error instanceof ReconcileStopped) return;
    // The next start tries again; meanwhile reads find what is missing, and unindexed blobs are misses.
    logger.error({ err: error }, 'cache reconcile failed');
  }
}

class ReconcileStopped extends Error {}

/** Empties the spool directory: what is there after a stop is a fill cut short. Returns how many it removed. */
export function emptySpool(layout: CacheLayout): Promise<number> {
  return emptyDirectory(layout.tmpDir);
}

async function takeLease(index: IndexStore, logger: FastifyBaseLogger): Promise<Lease | null> {
  try {
    return await index.acquireLease(RECONCILE_LEASE, LEASE_TTL_MS);
  } catch (error) {
    // Nobody may assume a lease the backend did not grant: read only.
    logger.warn({ err: error }, 'cache reconcile: the reconcile lease could not be asked for; reading only');
    return null;
  }
}

/**
 * Rows for committed blobs that have none (the store refuses, and may remove, what must not be served);
 * `wanted` is asked again just before each adoption.
 */
async function adoptAll(store: BlobStore, digests: Digest[], between: () => Promise<void>, wanted: (digest: Digest) => boolean = () => true): Promise<{ reindexed: BlobEntry[]; refused: number }> {
  const reindexed: BlobEntry[] = [];
  let refused = 0;
  for (let i = 0; i < digests.length; i += ADOPT_CONCURRENCY) {
    await Promise.all(
      digests.slice(i, i + ADOPT_CONCURRENCY).map(async (digest) => {
        if (!wanted(digest)) return;
        const adopted = await store.adopt(digest);
        if (adopted && !wanted(digest)) return;
        if (!adopted) {
          refused += 1;
          return;
        }
        const { size, modified, kind, mediaType } = adopted;
        reindexed.push({ digest, size, kind, mediaType, created: modified, lastAccess: modified, source: 'reconciled' });
      }),
    );
    await between();
  }
  return { reindexed, refused };
}

async function emptyDirectory(dir: string): Promise<number> {
  const names = await readdir(dir);
  await Promise.all(names.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  return names.length;
}

/** The entries whose digest has no row in the index now; one that cannot be asked is left to the next reconcile. */
export async function stillWithoutRow(index: IndexStore, entries: BlobEntry[]): Promise<BlobEntry[]> {
  const without: BlobEntry[] = [];
  for (const entry of entries) {
    const row = await index.readEntry(entry.digest).catch(() => null);
    if (row === undefined) without.push(entry);
  }
  return without;
}
