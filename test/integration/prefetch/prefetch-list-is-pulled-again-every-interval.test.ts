/**
 * Issue 12: the `prefetch:` list is pulled at start and again every PREFETCH_INTERVAL, one round at a
 * time; a later round finds the blobs cached and fetches none of them again (a HEAD through the
 * routes, never a GET upstream). The upstream is the fixture of ./held-image-registry.ts; Layover
 * (buildApp), dnsmasq and TLS are real.
 */
import { afterEach, expect, it } from 'vitest';
import { type HeldImageBench, startHeldImageBench, until } from './held-image-registry.js';

let bench: HeldImageBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

it('rounds repeat every PREFETCH_INTERVAL, one line each; the second fetches no blob again', async () => {
  const b = (bench = await startHeldImageBench({ prefetchList: true, env: { PREFETCH_INTERVAL: '1s' } }));
  const rounds = (): Array<Record<string, unknown>> => b.layover.logs.filter((l) => l.msg === 'prefetch round done');
  await until(() => rounds().length >= 2, 'two rounds');
  const [first, second] = rounds();
  expect(first).toMatchObject({ round: 1, images: 1, ok: 1, failed: [], bytes: 6 * 256 * 1024, blobs: 6 });
  expect(second).toMatchObject({ round: 2, images: 1, ok: 1, failed: [], bytes: 0 });
  expect(b.upstream.blobGets().sort()).toEqual([...b.upstream.blobs].sort());
}, 60_000);

it("counts Layover's own pulls apart from clients': route prefetch in /metrics, no bytes served, nothing in the status page's history", async () => {
  const b = (bench = await startHeldImageBench({ prefetchList: true }));
  await until(() => b.layover.logs.some((l) => l.msg === 'prefetch round done'), 'a round');
  const requests = (await b.layover.app.metrics.requests.get()).values;
  const prefetched = requests.filter((v) => v.labels.route === 'prefetch').reduce((sum, v) => sum + v.value, 0);
  // Every blob and at least one manifest.
  expect(prefetched).toBeGreaterThan(b.upstream.blobs.length);
  expect(requests.filter((v) => v.labels.route === 'blob' || v.labels.route === 'manifest')).toEqual([]);
  expect((await b.layover.app.metrics.bytesServed.get()).values.reduce((sum, v) => sum + v.value, 0)).toBe(0);
  const status = (await (await fetch(`http://127.0.0.1:${b.layover.addresses.http!.port}/status.json`)).json()) as { metrics: Record<string, { value: number }> };
  for (const key of ['hour-requests', 'week-requests', 'requests-miss', 'requests-hit', 'bytes-from-upstream']) expect(status.metrics[key]?.value, key).toBe(0);
}, 60_000);
