import { describe, expect, it } from 'vitest';
import { scopeFromText } from '../../../src/cache/cache-scope.js';
import { digestOf } from '../../../src/registry/digest.js';
import { digestsOf, OCI_MANIFEST, pullImage } from '../admin/image-fixture.js';
import { blob, meta, openCache } from './cache-fixture.js';

// The pinned digests are worked out once and kept (cache-pins.ts): every change that moves them must
// reach that copy, or eviction takes what a pin protects (or keeps what nobody pins any more).

const cached = (cache: Awaited<ReturnType<typeof openCache>>['cache'], digests: string[]): boolean[] => digests.map((digest) => cache.stat(digest as never) !== undefined);

describe('the pinned digests kept between eviction passes', () => {
  it('take in a pin made after they were worked out, and let go at its unpin', async () => {
    const { cache } = await openCache();
    const kept = await pullImage(cache, 'app', 'v1', [blob(1000)]);
    await cache.pins.pin(scopeFromText('registry.test/other:v1'));
    // Worked out now, with a pin that covers nothing cached.
    expect(await cache.pins.pinnedDigests()).not.toContain(kept.manifest);
    await cache.pins.pin(scopeFromText('registry.test/app:v1'));
    await cache.prune(0);
    expect(cached(cache, digestsOf(kept))).toEqual(digestsOf(kept).map(() => true));
    await cache.pins.unpin(scopeFromText('registry.test/app:v1'));
    await cache.prune(0);
    expect(cached(cache, digestsOf(kept))).toEqual(digestsOf(kept).map(() => false));
  });

  it('follow a pinned tag to its new manifest, and free the old one', async () => {
    const { cache } = await openCache();
    const old = await pullImage(cache, 'app', 'v1', [blob(1000)]);
    await cache.pins.pin(scopeFromText('registry.test/app:v1'));
    await cache.prune(0);
    expect(cache.stat(old.layers[0]!)).toBeDefined();
    // The tag moves: a new pull of app:v1 stores another manifest under the same tag record.
    const moved = await pullImage(cache, 'app', 'v1', [blob(2000)]);
    await cache.prune(0);
    expect(cached(cache, digestsOf(moved))).toEqual(digestsOf(moved).map(() => true));
    expect(cache.stat(old.layers[0]!)).toBeUndefined();
  });

  it('take in blobs committed later under a pinned repository, and the layers of a pinned manifest cached after them', async () => {
    const { cache } = await openCache();
    const layer = blob(1000);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: layer.digest, size: 1000 }, layers: [{ digest: layer.digest, size: 1000 }] }));
    const manifest = digestOf(body);
    await cache.pins.pin(scopeFromText('registry.test/app'));
    await cache.pins.pin(scopeFromText(manifest));
    const elsewhere = blob(10);
    await cache.put(elsewhere.digest, elsewhere.bytes, meta({ source: 'registry.test/elsewhere' }));
    // Worked out now: the manifest's digest (not cached yet), nothing of the repository.
    expect([...(await cache.pins.pinnedDigests())]).toEqual([manifest]);
    const late = blob(1000);
    await cache.put(late.digest, late.bytes, meta({ source: 'registry.test/app' }));
    await cache.put(layer.digest, layer.bytes, meta({ source: 'registry.test/elsewhere' }));
    await cache.put(manifest, body, { size: body.length, mediaType: OCI_MANIFEST, kind: 'manifest', source: 'registry.test/elsewhere' });
    await cache.prune(0);
    expect(cached(cache, [late.digest, layer.digest, manifest])).toEqual([true, true, true]);
    expect(cache.stat(elsewhere.digest)).toBeUndefined();
  });

  it('stay right through a purge of the pinned repository: what is pinned is kept, the rest goes', async () => {
    const { cache } = await openCache();
    const pinned = await pullImage(cache, 'app', 'v1', [blob(1000)]);
    const loose = await pullImage(cache, 'app', 'v2', [blob(1000)]);
    await cache.pins.pin(scopeFromText('registry.test/app:v1'));
    expect(await cache.pins.pinnedDigests()).toContain(pinned.layers[0]);
    const purged = await cache.purge(scopeFromText('registry.test/app'), { force: true });
    expect(new Set(purged.removedDigests)).toEqual(new Set(digestsOf(loose)));
    await cache.prune(0);
    expect(cached(cache, digestsOf(pinned))).toEqual(digestsOf(pinned).map(() => true));
    await cache.pins.unpin(scopeFromText('registry.test/app:v1'));
    await cache.prune(0);
    expect(cache.stats().entries).toBe(0);
  });
});
