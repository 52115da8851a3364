/**
 * Issue 12, prefetch: a registry that answers blob GETs with a redirect to its storage host
 * (REDIRECTS=rewrite, the default: Layover answers its own client a 307 to a signed docker.proxy URL,
 * and only that URL's GET fetches and caches the blob). A prefetch must follow it as a client would;
 * taking the 307 for "already cached" reported the image done with none of its blobs cached. The
 * upstream is the fixture of ./held-image-registry.ts; Layover, dnsmasq and TLS are real.
 */
import { afterEach, expect, it } from 'vitest';
import { Prefetcher } from '../../../src/prefetch/prefetcher.js';
import { committed, type HeldImageBench, startHeldImageBench, until } from './held-image-registry.js';

let bench: HeldImageBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

it.each([
  ['HTTP/1.1', {}],
  ['HTTP/2 offered (LAYOVER_HTTP2)', { LAYOVER_HTTP2: 'true' }],
])('a prefetch follows a storage redirect through docker.proxy: every blob is fetched once and cached (%s)', async (_listener, env) => {
  const b = (bench = await startHeldImageBench({ redirectBlobs: true, env }));
  const { app } = b.layover;
  const never = new AbortController().signal;
  const summary = await new Prefetcher({ https: app.https, config: app.config, cache: app.cache }).run({ images: [b.image], platform: null, referrers: false }, () => undefined, {
    stopStarting: never,
    abort: never,
  });
  expect(summary).toMatchObject({ ok: [b.image], failed: [] });
  expect(summary.totals.bytes).toBe(6 * 256 * 1024);
  for (const digest of b.upstream.blobs) await until(() => committed(b, digest), `${digest} committed`);
  expect(b.upstream.storageGets().sort()).toEqual([...b.upstream.blobs].sort());
}, 60_000);
