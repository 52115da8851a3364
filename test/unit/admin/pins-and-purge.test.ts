import { access, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { scopeFromText } from '../../../src/cache/cache-scope.js';
import { Metrics } from '../../../src/metrics/metrics.js';
import { digestHex, digestOf, type Digest } from '../../../src/registry/digest.js';
import { blob, meta, openCache } from '../cache/cache-fixture.js';
import { digestsOf, OCI_INDEX, OCI_MANIFEST, pullImage } from './image-fixture.js';

// The cache core's pins and purges on a real file cache: manifests stored as blobs, tag records as
// src/proxy/manifest-route.ts writes them, access records as src/access/ writes them.

const present = async (dir: string, digest: Digest): Promise<boolean> =>
  access(join(dir, 'blobs', 'sha256', digestHex(digest).slice(0, 2), digestHex(digest))).then(
    () => true,
    () => false,
  );


describe('purge', () => {
  it('removes a tag\'s manifest, config and own layers with their records, and keeps a layer another repository needs', async () => {
    const { cache, dir } = await openCache();
    const base = blob(1000);
    const app = await pullImage(cache, 'app', 'v1', [base, blob(2000)]);
    const other = await pullImage(cache, 'other', 'v1', [base, blob(3000)]);
    const before = cache.stats().bytes;
    const result = await cache.purge(scopeFromText('registry.test/app:v1'), { force: false });
    expect(new Set(result.removedDigests)).toEqual(new Set([app.manifest, app.config, app.layers[1]]));
    expect(result.freedBytes).toBeGreaterThan(2050);
    expect(result.freedBytes).toBe(before - cache.stats().bytes);
    expect(result.kept).toEqual([expect.objectContaining({ digest: base.digest, reason: 'shared', sharedWith: expect.arrayContaining([`manifest ${other.manifest}`]) })]);
    for (const digest of [app.manifest, app.config, app.layers[1]!]) {
      expect(cache.stat(digest)).toBeUndefined();
      expect(await present(dir, digest)).toBe(false);
      expect(cache.getRecord(`access:member:${digest}`)).toBeUndefined();
    }
    expect(cache.recordKeys('tag:registry.test/app:')).toEqual([]);
    for (const digest of digestsOf(other)) expect(cache.stat(digest)).toBeDefined();

    const forced = await cache.purge(scopeFromText('registry.test/app'), { force: true });
    expect(forced.removedDigests).toEqual([base.digest]);
    expect(cache.stat(other.manifest)).toBeDefined();
  });

  it('a repository\'s purge takes what was pulled there by digest; a registry\'s takes everything of it', async () => {
    const { cache } = await openCache();
    const untagged = await pullImage(cache, 'app', null, [blob(100)]);
    await pullImage(cache, 'elsewhere', 'v2', [blob(100)]);
    const result = await cache.purge(scopeFromText('registry.test/app'), { force: false });
    expect(new Set(result.removedDigests)).toEqual(new Set(digestsOf(untagged)));
    const all = await cache.purge(scopeFromText('registry.test'), { force: false });
    expect(all.removed).toBe(3);
    expect(cache.stats().entries).toBe(0);
  });

  it('a port of a host is a registry of its own; a scope naming the host alone covers every port', async () => {
    const { cache } = await openCache();
    const at5000 = await pullImage(cache, 'app', 'v1', [blob(100)], 'registry.test:5000');
    const at5001 = await pullImage(cache, 'app', 'v1', [blob(100)], 'registry.test:5001');
    const result = await cache.purge(scopeFromText('registry.test:5001/app:v1'), { force: false });
    expect(new Set(result.removedDigests)).toEqual(new Set(digestsOf(at5001)));
    for (const digest of digestsOf(at5000)) expect(cache.stat(digest)).toBeDefined();
    expect(cache.recordKeys('tag:registry.test:5000/app:')).toHaveLength(1);
    const all = await cache.purge(scopeFromText('registry.test'), { force: false });
    expect(new Set(all.removedDigests)).toEqual(new Set(digestsOf(at5000)));
    expect(cache.stats().entries).toBe(0);
  });

  it('a digest\'s purge takes an index with its platforms\' manifests and layers', async () => {
    const { cache } = await openCache();
    const amd64 = await pullImage(cache, 'multi', null, [blob(100)]);
    const arm64 = await pullImage(cache, 'multi', null, [blob(100)]);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [amd64, arm64].map((i) => ({ digest: i.manifest, mediaType: OCI_MANIFEST, size: 1 })) }));
    const index = digestOf(body);
    await cache.put(index, body, { size: body.length, mediaType: OCI_INDEX, kind: 'manifest', source: 'registry.test/multi' });
    const result = await cache.purge({ kind: 'digest', digest: index }, { force: false });
    expect(new Set(result.removedDigests)).toEqual(new Set([index, ...digestsOf(amd64), ...digestsOf(arm64)]));
  });

  it('never removes a blob while a fill is writing it', async () => {
    const { cache } = await openCache();
    const pending = blob(4000);
    const source = new PassThrough();
    const fill = cache.fill(pending.digest, source, meta({ size: pending.bytes.length }));
    source.write(pending.bytes.subarray(0, 100));
    const result = await cache.purge({ kind: 'digest', digest: pending.digest }, { force: true });
    expect(result.removed).toBe(0);
    expect(result.kept).toEqual([expect.objectContaining({ digest: pending.digest, reason: 'filling' })]);
    source.end(pending.bytes.subarray(100));
    await fill.done;
    expect(cache.stat(pending.digest)).toBeDefined();
  });
});

describe('pins', () => {
  it('a pinned image survives prune to 0 and the size cap; an unpinned one goes', async () => {
    const { cache } = await openCache({ maxSize: 1024 * 1024 });
    const kept = await pullImage(cache, 'kept', 'v1', [blob(1000), blob(1000)]);
    await cache.pins.pin(scopeFromText('registry.test/kept:v1'));
    const gone = await pullImage(cache, 'gone', 'v1', [blob(1000)]);
    const pruned = await cache.prune(0);
    expect(pruned.removed).toBe(3);
    for (const digest of digestsOf(kept)) expect(cache.stat(digest)).toBeDefined();
    for (const digest of digestsOf(gone)) expect(cache.stat(digest)).toBeUndefined();
  });

  it('a pin made before the image is cached applies once it is, and pins survive a restart', async () => {
    const first = await openCache();
    await first.cache.pins.pin(scopeFromText('registry.test/later'));
    const later = await pullImage(first.cache, 'later', 'v1', [blob(1000)]);
    const loose = await pullImage(first.cache, 'loose', 'v1', [blob(1000)]);
    await first.cache.close();
    // Opening under a cap evicts at once: only the pinned image stays.
    const again = await openCache({ dir: first.dir, maxSize: 10 });
    await again.cache.prune();
    for (const digest of digestsOf(later)) expect(again.cache.stat(digest)).toBeDefined();
    for (const digest of digestsOf(loose)) expect(again.cache.stat(digest)).toBeUndefined();
    expect(again.cache.pins.list().map((pin) => pin.scope)).toEqual([{ kind: 'repository', registry: 'registry.test', repository: 'later' }]);
    // A pinned blob stays even through a purge that names it.
    const purged = await again.cache.purge({ kind: 'digest', digest: later.layers[0]! }, { force: true });
    expect(purged.kept).toEqual([expect.objectContaining({ reason: 'pinned' })]);
    expect(await again.cache.pins.unpin(scopeFromText('registry.test/later'))).toBe(true);
    await again.cache.prune();
    expect(again.cache.stats().entries).toBe(0);
  });
});

describe('a pinned manifest that cannot be read (review of issue 12)', () => {
  it('keeps everything at eviction rather than evict the layers it names, and fails a purge rather than guess', async () => {
    const first = await openCache();
    const pinned = await pullImage(first.cache, 'kept', 'v1', [blob(1000), blob(1000)]);
    const loose = await pullImage(first.cache, 'loose', 'v1', [blob(1000)]);
    await first.cache.pins.pin(scopeFromText('registry.test/kept:v1'));
    await first.cache.close();
    // Reopened (nothing parsed yet), the pinned manifest's file gone behind the cache's back: a bucket
    // that fails a read, a disk error.
    const again = await openCache({ dir: first.dir });
    await unlink(join(first.dir, 'blobs', 'sha256', digestHex(pinned.manifest).slice(0, 2), digestHex(pinned.manifest)));
    await again.cache.prune(0);
    for (const digest of [pinned.config, ...pinned.layers]) expect(again.cache.stat(digest), digest).toBeDefined();
    expect(again.logs.some((line) => line.msg === 'cache eviction skipped: the pinned digests could not be worked out')).toBe(true);
    await expect(again.cache.purge(scopeFromText('registry.test/loose:v1'), { force: false })).rejects.toThrow();
    for (const digest of digestsOf(loose)) expect(again.cache.stat(digest)).toBeDefined();
  });
});

describe('stats for /metrics', () => {
  it('counts evictions and the clients following a fill', async () => {
    const metrics = new Metrics();
    const { cache } = await openCache({ maxSize: 1500, metrics });
    for (const part of [blob(1000), blob(1000)]) await cache.put(part.digest, part.bytes, meta());
    await cache.prune();
    expect(cache.stats()).toMatchObject({ evictions: 1, evictedBytes: 1000 });
    expect((await metrics.evictions.get()).values[0]!.value).toBe(1);
    expect((await metrics.evictedBytes.get()).values[0]!.value).toBe(1000);

    const pending = blob(500);
    const source = new PassThrough();
    const fill = cache.fill(pending.digest, source, meta({ size: 500 }));
    const readers = [fill.reader(), cache.activeFill(pending.digest)!.reader()];
    expect(cache.stats().waiters).toBe(2);
    const read = readers.map((reader) => new Promise((resolve) => reader.on('data', () => undefined).once('close', resolve)));
    source.end(pending.bytes);
    await Promise.all(read);
    await fill.done;
    expect(cache.stats().waiters).toBe(0);
  });
});
