/**
 * Issue 12, prefetch against a hostile manifest: a layer whose descriptor understates its size. The
 * prefetch reads no more than the manifest says, fails that image naming the blob, and hangs up on
 * the route (which would otherwise wait for a reader that is gone, holding the cached file open).
 * The upstream is the fixture of ./held-image-registry.ts; Layover (buildApp), dnsmasq and TLS are real.
 */
import { afterEach, expect, it } from 'vitest';
import { Prefetcher } from '../../../src/prefetch/prefetcher.js';
import { type HeldImageBench, startHeldImageBench, until } from './held-image-registry.js';

let bench: HeldImageBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

it('a layer larger than its descriptor fails the image, and the route it was read from finishes', async () => {
  const b = (bench = await startHeldImageBench({ understateLayer: true }));
  const { app } = b.layover;
  const never = new AbortController().signal;
  const summary = await new Prefetcher({ https: app.https, config: app.config, cache: app.cache, blobConcurrency: 1 }).run({ images: [b.image], platform: null, referrers: false }, () => undefined, {
    stopStarting: never,
    abort: never,
  });
  expect(summary.ok).toEqual([]);
  expect(summary.failed).toEqual([{ image: b.image, error: `blob ${b.upstream.blobs[1]}: more than the 1000 bytes its manifest says came` }]);
  // The route the prefetch left stops reading the blob for it instead of waiting for a reader that is gone.
  await until(() => app.cache.stats().activeFills === 0 && app.cache.stats().waiters === 0, 'no fill and no reader left');
}, 60_000);
