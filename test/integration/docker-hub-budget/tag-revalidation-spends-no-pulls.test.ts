/**
 * Issue 12, the Docker Hub budget: every manifest GET on Docker Hub is a pull of the budget and a
 * HEAD is not. Layover used to GET a tag every time its cached answer was due (and on every pull
 * with ENABLE_MANIFEST_CACHE off), and to GET a tag whose digest it already held under another tag.
 * Now it asks with a HEAD first and serves the digest from the cache when it holds it.
 */
import { expect, it } from 'vitest';
import { budgetBenchPerTest, requestLines, tagPath } from './budget-bench.js';

const benches = budgetBenchPerTest();

it.each([
  ['with the manifest cache past its time', { ENABLE_MANIFEST_CACHE: 'true', MANIFEST_CACHE_DEFAULT_TIME: '1ms' }],
  ['with the manifest cache off', {}],
])('repeated pulls of a cached tag %s make HEADs only: 0 manifest GETs', async (_case, env) => {
  const bench = await benches.start(env);
  const { upstream } = bench;
  await bench.pull('v1');
  expect(upstream.manifestRequests('GET', tagPath('v1'))).toHaveLength(1);
  const before = upstream.seen.length;
  const answered = async (): Promise<number> => (await bench.intercepted.layover.app.metrics.upstreamDuration.get()).values.filter((v) => v.metricName?.endsWith('_count')).reduce((sum, v) => sum + v.value, 0);
  const answeredBefore = await answered();

  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const answer = await bench.pull('v1');
    expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
    expect(answer.body.equals(benches.images.index.bytes)).toBe(true);
  }
  const since = upstream.seen.slice(before);
  expect(since.filter((r) => r.method === 'GET' && r.path.includes('/manifests/'))).toEqual([]);
  expect(since.filter((r) => r.method === 'HEAD' && r.path === tagPath('v1'))).toHaveLength(3);
  // The HEADs are upstream requests in /metrics like any other (the token fetches come on top).
  expect((await answered()) - answeredBefore).toBeGreaterThanOrEqual(3);
  expect(upstream.remaining('anonymous')).toBe(100 - 1 - benches.images.platforms.length);
  const lines = requestLines(bench, tagPath('v1')).slice(1);
  expect(lines.map((l) => [l.cache, l.revalidated])).toEqual([['hit', 'head'], ['hit', 'head'], ['hit', 'head']]);
}, 60_000);

it('a tag whose digest is already cached (pulled under another tag) costs 0 GETs', async () => {
  const bench = await benches.start();
  const { upstream } = bench;
  await bench.pull('v1');
  const spent = 100 - upstream.remaining('anonymous');

  const latest = await bench.pull('latest');
  expect(latest.headers['docker-content-digest']).toBe(benches.images.index.digest);
  expect(latest.body.equals(benches.images.index.bytes)).toBe(true);
  expect(upstream.manifestRequests('GET', tagPath('latest'))).toEqual([]);
  expect(upstream.manifestRequests('HEAD', tagPath('latest'))).toHaveLength(1);
  expect(100 - upstream.remaining('anonymous')).toBe(spent);
}, 60_000);

it('a tag that moved to a digest the cache does not hold is fetched: one GET, the new manifest', async () => {
  const bench = await benches.start();
  const { upstream } = bench;
  await bench.pull('v1');
  upstream.tag('v1', benches.images.single.digest);

  const moved = await bench.pull('v1');
  expect(moved.headers['docker-content-digest']).toBe(benches.images.single.digest);
  expect(moved.body.equals(benches.images.single.bytes)).toBe(true);
  expect(upstream.manifestRequests('GET', tagPath('v1'))).toHaveLength(2);
  // And from then on the new digest is the cached one.
  await bench.pull('v1');
  expect(upstream.manifestRequests('GET', tagPath('v1'))).toHaveLength(2);
}, 60_000);
