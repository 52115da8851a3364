import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlobEntry } from '../../../src/cache/blob-cache.js';
import { IndexStore } from '../../../src/cache/index-store.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { openCache, tempDir } from '../../unit/cache/cache-fixture.js';

const COUNT = 100_000;

/** Writes COUNT tiny blobs and their rows straight to disk, as a long-running cache would have left them. */
async function seed(dir: string): Promise<BlobEntry[]> {
  const entries: BlobEntry[] = [];
  for (let fan = 0; fan < 256; fan++) mkdirSync(join(dir, 'blobs', 'sha256', fan.toString(16).padStart(2, '0')), { recursive: true });
  for (let i = 0; i < COUNT; i++) {
    const bytes = Buffer.from(`blob ${i}`);
    const hex = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex), bytes);
    // lastAccess follows i, so the expected eviction order is known.
    entries.push({ digest: `sha256:${hex}` as Digest, size: bytes.length, mediaType: null, kind: 'blob', created: i, lastAccess: i, source: 'seed' });
  }
  const index = await IndexStore.open(join(dir, 'index.sqlite'), captureLogger().logger);
  for (let i = 0; i < COUNT; i += 10_000) expect(await index.putEntries(entries.slice(i, i + 10_000))).toEqual([]);
  await index.close();
  return entries;
}

describe('100,000 entries', () => {
  it('open rebuilds the LRU and eviction removes the oldest half', { timeout: 180_000 }, async ({ annotate }) => {
    const dir = join(await tempDir(), 'cache');
    await mkdir(join(dir, 'tmp'), { recursive: true });
    let started = performance.now();
    const entries = await seed(dir);
    const seedMs = performance.now() - started;
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    const keptFrom = COUNT / 2;
    const keptBytes = entries.slice(keptFrom).reduce((sum, e) => sum + e.size, 0);

    // No timing assertions (shared machines); the numbers are reported as test annotations.
    started = performance.now();
    const { cache } = await openCache({ dir, maxSize: total });
    const openMs = performance.now() - started;
    expect(cache.stats()).toMatchObject({ entries: COUNT, bytes: total });
    expect(cache.list()[0]!.digest).toBe(entries[COUNT - 1]!.digest);

    started = performance.now();
    expect(await cache.prune(keptBytes)).toEqual({ removed: keptFrom, freedBytes: total - keptBytes });
    const pruneMs = performance.now() - started;
    await annotate(`seeding: ${Math.round(seedMs)} ms; open of ${COUNT} entries: ${Math.round(openMs)} ms; eviction of ${keptFrom}: ${Math.round(pruneMs)} ms`);
    expect(cache.stats()).toMatchObject({ entries: COUNT - keptFrom, bytes: keptBytes });
    expect(cache.stat(entries[keptFrom - 1]!.digest)).toBeUndefined();
    expect(cache.stat(entries[keptFrom]!.digest)).toBeDefined();
    await cache.close();

    const again = await openCache({ dir, maxSize: total });
    expect(again.cache.stats().entries).toBe(COUNT - keptFrom);
  });
});
