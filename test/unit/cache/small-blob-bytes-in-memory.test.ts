import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SmallBlobMemory } from '../../../src/cache/small-blob-memory.js';
import { digestHex, type Digest } from '../../../src/registry/digest.js';
import { blob, meta, openCache } from './cache-fixture.js';

function blobFile(dir: string, digest: Digest): string {
  return join(dir, 'blobs', 'sha256', digestHex(digest).slice(0, 2), digestHex(digest));
}

const manifestMeta = meta({ kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json' });

/** A cache that stored `m` and was opened again: it holds none of the bytes the first one stored. */
async function storedThenReopened(m: { bytes: Buffer; digest: Digest }) {
  const { cache, dir } = await openCache();
  await cache.put(m.digest, m.bytes, manifestMeta);
  await cache.close();
  return { cache: (await openCache({ dir })).cache, dir };
}

describe('manifest bytes held in memory', () => {
  it('holds a manifest it stored: the next read answers from memory, before any read of its file', async () => {
    const { cache, dir } = await openCache();
    const m = blob(600);
    expect(cache.heldBytes(m.digest)).toBeUndefined();
    await cache.put(m.digest, m.bytes, manifestMeta);
    expect(cache.heldBytes(m.digest)?.bytes.equals(m.bytes)).toBe(true);
    // Overwriting the file shows where the answer came from: memory holds the verified bytes.
    await writeFile(blobFile(dir, m.digest), Buffer.alloc(600, 0x41));
    expect((await cache.readBytes(m.digest, 4096))?.bytes.equals(m.bytes)).toBe(true);
  });

  it('reads a manifest it did not store (a cache opened again) once from its file, then from memory', async () => {
    const m = blob(600);
    const { cache: again, dir } = await storedThenReopened(m);
    expect(again.heldBytes(m.digest)).toBeUndefined();
    const first = await again.readBytes(m.digest, 4096);
    expect(first?.bytes.equals(m.bytes)).toBe(true);
    await writeFile(blobFile(dir, m.digest), Buffer.alloc(600, 0x41));
    const second = await again.readBytes(m.digest, 4096);
    expect(second?.bytes.equals(m.bytes)).toBe(true);
    expect(second?.entry.digest).toBe(m.digest);
  });

  it('does not hold the bytes of a put whose blob was already cached: those bytes were not verified', async () => {
    const m = blob(600);
    const { cache: again } = await storedThenReopened(m);
    await again.put(m.digest, Buffer.alloc(600, 0x42), manifestMeta);
    expect(again.heldBytes(m.digest)).toBeUndefined();
    expect((await again.readBytes(m.digest, 4096))?.bytes.equals(m.bytes)).toBe(true);
  });

  it('counts an answer from memory as an access: the blob is not the next one evicted', async () => {
    const { cache } = await openCache({ maxSize: 1000 });
    const [a, b, c] = [blob(300), blob(300), blob(300)];
    for (const x of [a, b, c]) await cache.put(x.digest, x.bytes, manifestMeta);
    await cache.readBytes(b.digest, 4096); // each from memory (held since its put)
    await cache.readBytes(c.digest, 4096);
    await cache.readBytes(a.digest, 4096); // a is now the most recent, b the oldest
    const d = blob(300);
    await cache.put(d.digest, d.bytes, manifestMeta);
    await cache.prune();
    expect(cache.stat(b.digest)).toBeUndefined();
    expect(cache.stat(a.digest)).toBeDefined();
  });

  it('never answers a purged or evicted manifest from memory', async () => {
    const { cache } = await openCache({ maxSize: 1000 });
    const [a, b, c] = [blob(400), blob(400), blob(400)];
    await cache.put(a.digest, a.bytes, manifestMeta);
    expect((await cache.readBytes(a.digest, 4096))?.bytes.equals(a.bytes)).toBe(true);
    await cache.put(b.digest, b.bytes, manifestMeta);
    await cache.put(c.digest, c.bytes, manifestMeta); // 1200 bytes: a, the oldest, goes
    await cache.prune();
    expect(cache.stat(a.digest)).toBeUndefined();
    expect(await cache.readBytes(a.digest, 4096)).toBeUndefined();

    await cache.readBytes(b.digest, 4096);
    await cache.purge({ kind: 'digest', digest: b.digest }, { force: true });
    expect(await cache.readBytes(b.digest, 4096)).toBeUndefined();
  });

  it('refuses a manifest bigger than the limit, and a file that lost bytes', async () => {
    const { cache, dir } = await openCache();
    const big = blob(5000);
    await cache.put(big.digest, big.bytes, manifestMeta);
    expect(await cache.readBytes(big.digest, 4096)).toBeNull();
    const [cut, gone] = [blob(700), blob(700)];
    for (const x of [cut, gone]) await cache.put(x.digest, x.bytes, manifestMeta);
    await cache.close(); // opened again, the cache holds none of the bytes it stored before
    const again = (await openCache({ dir })).cache;
    await writeFile(blobFile(dir, cut.digest), cut.bytes.subarray(0, 100));
    await expect(again.readBytes(cut.digest, 4096)).rejects.toThrow(/ends at byte 100/);
    // Damaged: dropped, not read (and refused) again and again.
    expect(await again.readBytes(cut.digest, 4096)).toBeUndefined();
    await rm(blobFile(dir, gone.digest));
    await expect(again.readBytes(gone.digest, 4096)).rejects.toThrow();
  });
});

describe('SmallBlobMemory', () => {
  const digest = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

  it('stays within its byte bound, least recently used out first', () => {
    const memory = new SmallBlobMemory(1000, 500);
    memory.set(digest(1), Buffer.alloc(400));
    memory.set(digest(2), Buffer.alloc(400));
    memory.get(digest(1));
    memory.set(digest(3), Buffer.alloc(400));
    expect(memory.size).toBe(800);
    expect(memory.get(digest(2))).toBeUndefined();
    expect(memory.get(digest(1))).toBeDefined();
    expect(memory.get(digest(3))).toBeDefined();
  });

  it('keeps no entry bigger than its entry bound', () => {
    const memory = new SmallBlobMemory(10_000, 500);
    memory.set(digest(1), Buffer.alloc(501));
    expect(memory.get(digest(1))).toBeUndefined();
    expect(memory.size).toBe(0);
    memory.set(digest(2), Buffer.alloc(500));
    expect(memory.get(digest(2))?.length).toBe(500);
  });
});
