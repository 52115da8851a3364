/**
 * Issue 12, prefetch --referrers against a registry that has the referrers API (the distribution
 * registry 2.8 has none: ./prefetch.test.ts covers its tag-schema fallback). The upstream is the
 * fixture of ./held-image-registry.ts, which answers the API; Layover, dnsmasq and TLS are real.
 */
import { afterEach, expect, it } from 'vitest';
import { Prefetcher } from '../../../src/prefetch/prefetcher.js';
import type { PrefetchLine } from '../../../src/prefetch/prefetch-progress.js';
import { committed, type HeldImageBench, startHeldImageBench, until } from './held-image-registry.js';

let bench: HeldImageBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

it('--referrers also fetches what the referrers API lists, when the registry has one', async () => {
  const b = (bench = await startHeldImageBench());
  const { app } = b.layover;
  const prefetcher = new Prefetcher({ https: app.https, config: app.config, cache: app.cache });
  const never = new AbortController().signal;
  const without = await prefetcher.run({ images: [b.image], platform: null, referrers: false }, () => undefined, { stopStarting: never, abort: never });
  expect(without).toMatchObject({ ok: [b.image], failed: [] });
  expect(b.upstream.seen.filter((line) => line.includes('/referrers/'))).toEqual([]);
  for (const digest of b.upstream.referrer.blobs) expect(committed(b, digest)).toBe(false);

  const lines: PrefetchLine[] = [];
  const summary = await prefetcher.run({ images: [b.image], platform: null, referrers: true }, (line) => lines.push(line), { stopStarting: never, abort: never });
  expect(summary).toMatchObject({ ok: [b.image], failed: [] });
  expect(lines.find((l) => l.event === 'image-done')).toMatchObject({ manifests: 2, blobs: 8 });
  for (const digest of b.upstream.referrer.blobs) await until(() => committed(b, digest), `${digest} committed`);
  // Fetched once each: the image's own blobs were cached already, and the tag fallback was not needed.
  expect(b.upstream.blobGets().sort()).toEqual([...b.upstream.blobs, ...b.upstream.referrer.blobs].sort());
  expect(b.upstream.seen.filter((line) => line.includes('/manifests/sha256-'))).toEqual([]);
}, 60_000);
