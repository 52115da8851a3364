import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobStore } from './blob-store.js';
import type { BlobEntry } from './blob-types.js';
import type { CacheLayout } from './cache-layout.js';
import type { IndexContents, IndexStore } from './index-store.js';

const ADOPT_CONCURRENCY = 4;

/**
 * Makes the index and the store agree again after a crash (or any unclean stop), before anything is served:
 * - spool files are partial fills: removed;
 * - index rows whose blob is gone (a crash between indexing and the commit): dropped;
 * - blobs with no row (a lost or rebuilt index, a crash between a row's deletion and the blob's): the
 *   store adopts them (files are re-hashed and removed when they do not match their name). Nothing
 *   complete is lost and nothing partial is served.
 * Returns the entries that are good to serve.
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
  const strays = await store.sweepStrays();
  const stored = new Set<Digest>();
  for await (const digest of store.list()) stored.add(digest);

  const live: BlobEntry[] = [];
  const missing: Digest[] = [];
  const indexed = new Set<Digest>();
  for (const entry of loaded.entries) {
    indexed.add(entry.digest);
    if (stored.has(entry.digest)) live.push(entry);
    else missing.push(entry.digest);
  }

  const unindexed = [...stored].filter((digest) => !indexed.has(digest));
  const reindexed: BlobEntry[] = [];
  let refused = 0;
  for (let i = 0; i < unindexed.length; i += ADOPT_CONCURRENCY) {
    await Promise.all(
      unindexed.slice(i, i + ADOPT_CONCURRENCY).map(async (digest) => {
        const adopted = await store.adopt(digest);
        if (!adopted) {
          refused += 1;
          return;
        }
        const { size, modified, kind, mediaType } = adopted;
        reindexed.push({ digest, size, kind, mediaType, created: modified, lastAccess: modified, source: 'reconciled' });
      }),
    );
  }

  await index.deleteKeys(loaded.invalid);
  await index.deleteEntries(missing);
  const unwritten = await index.putEntries(reindexed);
  if (unwritten.length > 0) {
    // The blobs are verified and stay served; the next open re-indexes them again.
    logger.error({ count: unwritten.length }, 'cache reconcile: re-indexed rows were not written');
  }
  logger.info(
    {
      store: store.kind,
      entries: live.length + reindexed.length,
      tmpRemoved,
      rowsDropped: missing.length + loaded.invalid.length,
      reindexed: reindexed.length,
      filesRemoved: refused + strays,
      ms: Math.round(performance.now() - started),
    },
    'cache index reconciled',
  );
  return live.concat(reindexed);
}

async function emptyDirectory(dir: string): Promise<number> {
  const names = await readdir(dir);
  await Promise.all(names.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  return names.length;
}
