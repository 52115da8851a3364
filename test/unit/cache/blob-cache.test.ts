import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FillError } from '../../../src/cache/blob-cache.js';
import { digestHex, digestOf } from '../../../src/registry/digest.js';
import { blob, collect, meta, MiB, openCache } from './cache-fixture.js';

describe('BlobCache: fill, commit, read', () => {
  it('commits a verified fill and serves it whole and in ranges', async () => {
    const { cache, dir } = await openCache();
    const { bytes, digest } = blob(3 * MiB + 17);
    const fill = cache.fill(digest, Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]), meta({ size: bytes.length }));
    const entry = await fill.done;
    expect(entry).toMatchObject({ digest, size: bytes.length, kind: 'blob', source: 'quay.io/org/repo' });
    expect(cache.activeFill(digest)).toBeUndefined();
    expect(cache.stat(digest)?.size).toBe(bytes.length);

    const whole = cache.read(digest);
    expect(whole?.entry.digest).toBe(digest);
    expect((await collect(whole!.stream)).equals(bytes)).toBe(true);
    const range = cache.read(digest, { start: MiB - 3, end: 2 * MiB + 4 });
    expect((await collect(range!.stream)).equals(bytes.subarray(MiB - 3, 2 * MiB + 5))).toBe(true);
    const tail = cache.read(digest, { start: bytes.length - 1, end: bytes.length + 100 });
    expect((await collect(tail!.stream)).equals(bytes.subarray(bytes.length - 1))).toBe(true);
    expect(() => cache.read(digest, { start: bytes.length, end: bytes.length })).toThrow(RangeError);

    // Stored once, by digest, with nothing left in tmp/.
    const stored = await readFile(join(dir, 'blobs', 'sha256', digestHex(digest).slice(0, 2), digestHex(digest)));
    expect(stored.equals(bytes)).toBe(true);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('handles sha512 digests and empty blobs', async () => {
    const { cache } = await openCache();
    const big = blob(1000, 'sha512');
    await cache.fill(big.digest, Readable.from([big.bytes]), meta()).done;
    expect((await collect(cache.read(big.digest)!.stream)).equals(big.bytes)).toBe(true);
    const empty = blob(0);
    await cache.fill(empty.digest, Readable.from([]), meta({ size: 0 })).done;
    expect(cache.stat(empty.digest)?.size).toBe(0);
    expect((await collect(cache.read(empty.digest)!.stream)).length).toBe(0);
  });

  it('misses return undefined', async () => {
    const { cache } = await openCache();
    const { digest } = blob(10);
    expect(cache.stat(digest)).toBeUndefined();
    expect(cache.read(digest)).toBeUndefined();
    expect(cache.activeFill(digest)).toBeUndefined();
  });

  it('put() stores small bodies after checking them', async () => {
    const { cache } = await openCache();
    const manifest = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
    const { digest } = blob(0);
    const good = digestOf(manifest);
    await expect(cache.put(digest, manifest, meta({ kind: 'manifest' }))).rejects.toMatchObject({ reason: 'digest-mismatch' });
    await expect(cache.put(good, manifest, meta({ size: 3 }))).rejects.toBeInstanceOf(FillError);
    expect(cache.stat(good)).toBeUndefined();
    const entry = await cache.put(good, manifest, meta({ kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json' }));
    expect(entry).toMatchObject({ digest: good, kind: 'manifest', size: manifest.length });
    expect((await collect(cache.read(good)!.stream)).equals(manifest)).toBe(true);
  });

  it('stats() and list() follow use, most recent first', async () => {
    const { cache } = await openCache();
    const blobs = [blob(100), blob(200), blob(300)];
    for (const b of blobs) await cache.put(b.digest, b.bytes, meta());
    expect(cache.list().map((e) => e.digest)).toEqual([blobs[2]!.digest, blobs[1]!.digest, blobs[0]!.digest]);
    await collect(cache.read(blobs[0]!.digest)!.stream);
    expect(cache.list()[0]!.digest).toBe(blobs[0]!.digest);
    expect(cache.stats()).toEqual({ entries: 3, bytes: 600, maxSize: 1024 * MiB, activeFills: 0, waiters: 0, evictions: 0, evictedBytes: 0 });
  });

  it('returns copies: callers cannot corrupt the index', async () => {
    const { cache } = await openCache();
    const b = blob(10);
    await cache.put(b.digest, b.bytes, meta());
    cache.stat(b.digest)!.size = 1;
    expect(cache.stat(b.digest)!.size).toBe(10);
  });
});

describe('BlobCache: records', () => {
  it('get/set/delete, persisted across reopen', async () => {
    const first = await openCache();
    await first.cache.setRecord('quay.io/org/repo:latest', { digest: 'sha256:x', at: 1 });
    await first.cache.setRecord('gone', [1, 2]);
    await first.cache.deleteRecord('gone');
    expect(first.cache.getRecord('quay.io/org/repo:latest')).toEqual({ digest: 'sha256:x', at: 1 });
    expect(first.cache.getRecord('gone')).toBeUndefined();
    await first.cache.close();

    const second = await openCache({ dir: first.dir });
    expect(second.cache.getRecord('quay.io/org/repo:latest')).toEqual({ digest: 'sha256:x', at: 1 });
    expect(second.cache.getRecord('gone')).toBeUndefined();
  });

  it('keeps what JSON keeps, so a value reads the same before and after a restart', async () => {
    const { cache } = await openCache();
    const value = { when: new Date(0), nested: { list: [1] } };
    await cache.setRecord('k', value);
    value.nested.list.push(2);
    expect(cache.getRecord('k')).toEqual({ when: '1970-01-01T00:00:00.000Z', nested: { list: [1] } });
  });
});

describe('BlobCache: lifecycle', () => {
  it('keeps entries and LRU order across close and reopen', async () => {
    const first = await openCache({ accessFlushMs: 60_000 });
    const blobs = [blob(10), blob(20), blob(30)];
    for (const b of blobs) await first.cache.put(b.digest, b.bytes, meta());
    // Only batched in memory until close() flushes it.
    await collect(first.cache.read(blobs[0]!.digest)!.stream);
    const order = first.cache.list().map((e) => e.digest);
    expect(order[0]).toBe(blobs[0]!.digest);
    await first.cache.close();

    const second = await openCache({ dir: first.dir });
    expect(second.cache.list().map((e) => e.digest)).toEqual(order);
    expect((await collect(second.cache.read(blobs[1]!.digest)!.stream)).equals(blobs[1]!.bytes)).toBe(true);
  });

  it('refuses a second open of the same directory while the first is open', async () => {
    const first = await openCache();
    await expect(openCache({ dir: first.dir })).rejects.toThrow(/already open|in use/);
    await first.cache.close();
    const again = await openCache({ dir: first.dir });
    expect(again.cache.stats().entries).toBe(0);
  });

  it('refuses work after close', async () => {
    const { cache } = await openCache();
    await cache.close();
    const b = blob(1);
    expect(() => cache.fill(b.digest, Readable.from([b.bytes]), meta())).toThrow(/closed/);
    await expect(cache.put(b.digest, b.bytes, meta())).rejects.toThrow(/closed/);
  });
});
