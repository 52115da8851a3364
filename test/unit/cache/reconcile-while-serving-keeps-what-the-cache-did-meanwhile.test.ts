import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { FileBlobStore } from '../../../src/cache/blob-stores/file.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import { LruIndex } from '../../../src/cache/lru-index.js';
import { reconcileWhileServing } from '../../../src/cache/reconcile.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, openCache, tempDir } from './cache-fixture.js';

// With an index of its own, the cache serves while the store is reconciled (reconcile.ts): the
// reconcile must not undo a commit, a removal or a fill that happened since the index was loaded.

const entryOf = (digest: Digest, size: number, source = 'registry.test/app'): BlobEntry => ({ digest, size, mediaType: null, kind: 'blob', created: 1, lastAccess: 1, source });

describe('the reconcile while serving', () => {
  it('keeps a row committed again since the load, and adopts no file a fill is writing', async () => {
    const layout = new CacheLayout(join(await tempDir(), 'cache'));
    const { logger, lines } = captureLogger('debug');
    await mkdir(layout.dir, { recursive: true });
    const index = await openSqliteIndex(layout.indexFile, logger);
    const store = new FileBlobStore(layout);
    const [recommitted, gone, filling] = [blob(100), blob(200), blob(300)];
    const loadedEntry = entryOf(recommitted.digest, 100);
    await index.putEntries([loadedEntry, entryOf(gone.digest, 200)]);
    const loaded = await index.load();
    // Since the load: the file of `recommitted` was found missing by a read and committed again, but
    // the listing below does not see it yet (its row is the commit's); `filling` has a file and no row.
    const commit = { ...entryOf(recommitted.digest, 100), lastAccess: 2, source: 'registry.test/new' };
    await index.putEntry(commit);
    await mkdir(dirname(layout.blobPath(filling.digest)), { recursive: true });
    await writeFile(layout.blobPath(filling.digest), filling.bytes);
    const lru = new LruIndex();
    lru.load(loaded.entries);
    lru.insert(commit);
    const inserted: Digest[] = [];
    await reconcileWhileServing(store, loaded, index, logger, {
      lru,
      isFilling: (digest) => digest === filling.digest,
      isRemoving: () => false,
      isClosed: () => false,
      insert: (entry) => inserted.push(entry.digest),
      requestEviction: () => undefined,
    }, 0);
    expect(lru.get(recommitted.digest)).toBe(commit);
    expect(await index.readEntry(recommitted.digest)).toEqual(commit);
    expect(lru.get(gone.digest)).toBeUndefined();
    expect(await index.readEntry(gone.digest)).toBeUndefined();
    expect(inserted).toEqual([]);
    expect(await index.readEntry(filling.digest)).toBeUndefined();
    expect(lines.find((line) => line.msg === 'cache index reconciled')).toMatchObject({ rowsDropped: 1, reindexed: 0 });
    await index.close();
  });

  it('serves at once from the index, answers a row without its file as gone, and adopts a file without a row afterwards', async () => {
    const first = await openCache();
    const [kept, lost, orphan] = [blob(1000), blob(2000), blob(3000)];
    await first.cache.put(kept.digest, kept.bytes, { mediaType: null, kind: 'blob', source: 'registry.test/app' });
    await first.cache.put(lost.digest, lost.bytes, { mediaType: null, kind: 'blob', source: 'registry.test/app' });
    await first.cache.close();
    const layout = new CacheLayout(first.dir);
    await rm(layout.blobPath(lost.digest));
    await mkdir(dirname(layout.blobPath(orphan.digest)), { recursive: true });
    await writeFile(layout.blobPath(orphan.digest), orphan.bytes);

    const { cache } = await openCache({ dir: first.dir });
    expect(cache.stat(kept.digest)).toBeDefined();
    await cache.reconciled();
    expect(cache.stat(lost.digest)).toBeUndefined();
    expect(cache.stat(orphan.digest)).toMatchObject({ size: 3000, source: 'reconciled' });
  });
});
