import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import { IMAGE_KEYS } from '../../bench/images.js';
import { dirContents } from './dir-compare.js';

// skopeo inside a loopback-only sandbox resolves registry.test through Layover's DNS, trusts
// Layover's CA, and pulls through it from the real distribution registry.
let bench: Bench;
beforeAll(async () => {
  bench = await startBench();
}, 180_000);
afterAll(() => bench?.close());

const blobGets = async () => {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
};

describe('pull-through through Layover with skopeo', () => {
  it.each(IMAGE_KEYS)('%s: the bytes equal those of a direct copy', async (key) => {
    const image = bench.images[key]!;
    const via = join(bench.sandbox.dir, `via-${key}`);
    const direct = join(bench.sandbox.dir, `direct-${key}`);
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { all: key === 'multi' });
    await bench.pullDirect(image.ref('registry-direct.test'), direct, { all: key === 'multi' });
    const viaFiles = dirContents(via);
    expect(Object.keys(viaFiles).length).toBeGreaterThan(2);
    expect(viaFiles).toEqual(dirContents(direct));
  }, 120_000);

  it('a second pull is served from the cache: no blob GET reaches the registry', async () => {
    const image = bench.images.large!;
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'first-large'));
    bench.registry.clearRequests();
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'second-large'));
    expect(await blobGets()).toEqual([]);
    const hits = bench.layover!.logs().filter((l) => l.msg === 'request' && l.cache === 'hit' && l.digest);
    expect(hits.map((l) => l.digest)).toEqual(expect.arrayContaining(image.blobs.map((b) => b.digest)));
    // One structured line per request: cache outcome, registry, repository, digest, status, bytes, ms.
    const layer = image.manifests[0]!.layers[0]!;
    expect(hits.find((l) => l.digest === layer.digest)).toMatchObject({
      registry: INTERCEPTED_HOST,
      repo: image.repository,
      status: 200,
      bytes: layer.size,
      ms: expect.any(Number),
    });
  }, 120_000);

  it('ten concurrent pulls of an uncached image make one upstream GET per blob', async () => {
    const image = bench.images.nested!;
    // A fresh Layover with an empty cache, same upstream.
    await bench.layover!.stop();
    await bench.startLayover();
    bench.registry.clearRequests();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, `concurrent-${i}`))),
    );
    const gets = await blobGets();
    const perDigest = new Map<string, number>();
    for (const get of gets) {
      const digest = get.path.split('/blobs/')[1]!;
      perDigest.set(digest, (perDigest.get(digest) ?? 0) + 1);
    }
    expect(Object.fromEntries(perDigest)).toEqual(Object.fromEntries(image.blobs.map((b) => [b.digest, 1])));
  }, 180_000);
});
