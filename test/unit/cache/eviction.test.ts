import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { digestHex, type Digest } from '../../../src/registry/digest.js';
import { blob, collect, meta, openCache } from './cache-fixture.js';

function blobFile(dir: string, digest: Digest): string {
  return join(dir, 'blobs', 'sha256', digestHex(digest).slice(0, 2), digestHex(digest));
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('eviction', () => {
  it('keeps the total under the cap, least recently used first', async () => {
    const { cache, dir } = await openCache({ maxSize: 1000 });
    const [a, b, c, d, e] = [blob(300), blob(300), blob(300), blob(300), blob(300)];
    for (const x of [a!, b!, c!]) await cache.put(x.digest, x.bytes, meta());
    await collect(cache.read(a!.digest)!.stream); // a becomes the most recent: b is now the oldest
    await cache.put(d!.digest, d!.bytes, meta());
    await cache.prune(); // waits for the eviction the commit started
    expect(cache.stat(b!.digest)).toBeUndefined();
    expect(cache.list().map((x) => x.digest)).toEqual([d!.digest, a!.digest, c!.digest]);
    await cache.put(e!.digest, e!.bytes, meta());
    await cache.prune();
    expect(cache.list().map((x) => x.digest)).toEqual([e!.digest, d!.digest, a!.digest]);
    expect(cache.stats().bytes).toBe(900);
    expect(await exists(blobFile(dir, b!.digest))).toBe(false);
    expect(await exists(blobFile(dir, c!.digest))).toBe(false);
    expect(await exists(blobFile(dir, a!.digest))).toBe(true);

    // The index agrees: evicted rows do not come back.
    await cache.close();
    const again = await openCache({ dir, maxSize: 1000 });
    expect(again.cache.list().map((x) => x.digest)).toEqual([e!.digest, d!.digest, a!.digest]);
  });

  it('prune(limit) evicts further and reports what it freed', async () => {
    const { cache } = await openCache({ maxSize: 10_000 });
    const blobs = [blob(100), blob(200), blob(300)];
    for (const x of blobs) await cache.put(x.digest, x.bytes, meta());
    expect(await cache.prune(300)).toEqual({ removed: 2, freedBytes: 300 });
    expect(cache.list().map((x) => x.digest)).toEqual([blobs[2]!.digest]);
    expect(await cache.prune()).toEqual({ removed: 0, freedBytes: 0 });
  });

  it('never deletes a blob under its reader; it goes once the reader closes', async () => {
    const { cache, dir } = await openCache({ maxSize: 1000 });
    const [a, b, c] = [blob(300), blob(300), blob(300)];
    for (const x of [a!, b!, c!]) await cache.put(x.digest, x.bytes, meta());
    const pinned = cache.read(a!.digest)!.stream;
    await collect(cache.read(b!.digest)!.stream);
    await collect(cache.read(c!.digest)!.stream);
    // a is the least recently used and goes first, but its file stays while it is being read.
    expect(await cache.prune(600)).toEqual({ removed: 1, freedBytes: 300 });
    expect(cache.stat(a!.digest)).toBeUndefined();
    expect(await exists(blobFile(dir, a!.digest))).toBe(true);
    expect((await collect(pinned)).equals(a!.bytes)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await exists(blobFile(dir, a!.digest))).toBe(false);
    expect(cache.stat(b!.digest)).toBeDefined();
  });

  it('evicts strictly least recently used first: an old blob being read does not cost the newest its place', async () => {
    const { cache, dir } = await openCache({ maxSize: 500 });
    const [a, b] = [blob(300), blob(300)];
    await cache.put(a!.digest, a!.bytes, meta());
    const first = cache.read(a!.digest)!.stream;
    const second = cache.read(a!.digest)!.stream;
    await cache.put(b!.digest, b!.bytes, meta());
    await cache.prune();
    expect(cache.stat(a!.digest)).toBeUndefined();
    expect(cache.stat(b!.digest)).toBeDefined();
    expect(cache.stats().bytes).toBe(300);
    // Both readers of a still get every byte; the file goes after the last one closes.
    expect((await collect(first)).equals(a!.bytes)).toBe(true);
    expect(await exists(blobFile(dir, a!.digest))).toBe(true);
    second.destroy();
    await new Promise((resolve) => second.once('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await exists(blobFile(dir, a!.digest))).toBe(false);
    expect(await exists(blobFile(dir, b!.digest))).toBe(true);
  });
});
