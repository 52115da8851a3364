import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, collect, meta, openCache } from './cache-fixture.js';

// A hit must not wait for the index (issue 13: no index write on a hit's path): it only marks its
// digest, and the access-time flush writes the rows in one batch.

describe('a cache hit', () => {
  it('writes nothing to the index; the next flush writes its access time', async () => {
    const { cache, dir } = await openCache({ accessFlushMs: 3_600_000 });
    const hit = blob(1000);
    await cache.put(hit.digest, hit.bytes, meta());
    const watcher = await openSqliteIndex(join(dir, 'index.sqlite'), captureLogger().logger);
    try {
      const stored = (await watcher.readEntry(hit.digest))!.lastAccess;
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (let i = 0; i < 3; i += 1) expect((await collect(cache.read(hit.digest)!.stream)).equals(hit.bytes)).toBe(true);
      expect(cache.stat(hit.digest)!.lastAccess).toBeGreaterThan(stored);
      expect((await watcher.readEntry(hit.digest))!.lastAccess).toBe(stored);
      // close() flushes the batched access times.
      await cache.close();
      expect((await watcher.readEntry(hit.digest))!.lastAccess).toBeGreaterThan(stored);
    } finally {
      await watcher.close();
    }
  });
});
