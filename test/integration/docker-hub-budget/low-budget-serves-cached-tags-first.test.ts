/**
 * Issue 12, the Docker Hub budget: with few pulls left (below DOCKER_HUB_BUDGET_LOW), a cached tag
 * is served at once, before any upstream request, and revalidated afterwards with a HEAD (free);
 * a tag the cache does not hold is still fetched. With none left (remaining 0, or a 429) cached tags
 * cost nothing and an uncached one gets the upstream's 429 as TOOMANYREQUESTS with its Retry-After.
 * The warning is logged once when the budget crosses the threshold, not on every answer below it.
 */
import { expect, it } from 'vitest';
import { TAG_REVALIDATED } from '../../../src/proxy/manifest-revalidation.js';
import { budgetBenchPerTest, REPOSITORY, requestLines, tagPath } from './budget-bench.js';
import { RETRY_AFTER_SECONDS } from './ratelimit-upstream.js';

const LOW_WARNING = /^Docker Hub pull budget low/;

const benches = budgetBenchPerTest();

it('below DOCKER_HUB_BUDGET_LOW a cached tag is served before any upstream request, then revalidated by HEAD', async () => {
  const bench = await benches.start({ DOCKER_HUB_BUDGET_LOW: '20' });
  const { upstream, intercepted } = bench;
  // 21 left: the tag's GET leaves 20, the platforms' GETs 19 and 18.
  upstream.setRemaining('anonymous', 21);
  await bench.pull('v1');
  expect(upstream.remaining('anonymous')).toBe(18);
  const before = upstream.seen.length;

  // Every HEAD is held: an answer that arrives meanwhile did not wait for the upstream.
  upstream.heads.start();
  const answer = await bench.ask(tagPath('v1'));
  expect(answer.status, answer.body.toString()).toBe(200);
  expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
  expect(answer.body.equals(benches.images.index.bytes)).toBe(true);
  expect(requestLines(bench, tagPath('v1')).at(-1)).toMatchObject({ cache: 'stale', budget: 'low' });

  await upstream.heads.held(1);
  // More pulls meanwhile: served the same way, and still one revalidation of the tag at a time.
  for (let i = 0; i < 3; i++) expect((await bench.ask(tagPath('v1'))).headers['docker-content-digest']).toBe(benches.images.index.digest);
  expect(upstream.seen.slice(before)).toEqual([{ method: 'HEAD', path: tagPath('v1'), account: 'anonymous' }]);
  upstream.heads.release();
  await expect.poll(() => intercepted.layover.logs.some((l) => l.msg === TAG_REVALIDATED && l.ref === 'v1' && l.cached === true)).toBe(true);
  expect(upstream.seen.slice(before).filter((r) => r.method === 'GET')).toEqual([]);
  expect(upstream.remaining('anonymous')).toBe(18);

  // An uncached tag is still fetched, low budget or not.
  const single = await bench.ask(`/v2/${REPOSITORY}/manifests/single`);
  expect(single.status).toBe(200);
  expect(single.headers['docker-content-digest']).toBe(benches.images.single.digest);
  expect(upstream.manifestRequests('GET', tagPath('single'))).toHaveLength(1);

  // One warning, at the crossing (19), although every answer since was below 20.
  expect(intercepted.layover.logs.filter((l) => LOW_WARNING.test(l.msg))).toHaveLength(1);
  expect(intercepted.layover.logs.find((l) => LOW_WARNING.test(l.msg))).toMatchObject({ account: 'anonymous', source: '127.0.0.1', remaining: 19, limit: 100 });
}, 60_000);

it('clients with anonymous tokens of their own share the address\'s budget: served first too when it is low', async () => {
  const bench = await benches.start({ DOCKER_HUB_BUDGET_LOW: '20' });
  const { upstream } = bench;
  const token = { authorization: 'Bearer an-anonymous-token-from-auth.docker.io' };
  upstream.setRemaining('anonymous', 21);
  await bench.pull('v1', token);
  const gets = upstream.manifestRequests('GET').length;

  const answer = await bench.ask(tagPath('v1'), { headers: token });
  expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
  expect(requestLines(bench, tagPath('v1')).at(-1)).toMatchObject({ cache: 'stale', budget: 'low' });
  expect(upstream.manifestRequests('GET')).toHaveLength(gets);
}, 60_000);

it('a tag that moved while the budget was low is fetched at the next pull, not served stale again', async () => {
  const bench = await benches.start({ DOCKER_HUB_BUDGET_LOW: '20' });
  const { upstream, intercepted } = bench;
  upstream.setRemaining('anonymous', 21);
  await bench.pull('v1');
  upstream.tag('v1', benches.images.single.digest);

  const first = await bench.ask(tagPath('v1'));
  expect(first.headers['docker-content-digest']).toBe(benches.images.index.digest);
  await expect.poll(() => intercepted.layover.logs.some((l) => l.msg === TAG_REVALIDATED && l.digest === benches.images.single.digest)).toBe(true);

  const second = await bench.ask(tagPath('v1'));
  expect(second.status).toBe(200);
  expect(second.headers['docker-content-digest']).toBe(benches.images.single.digest);
  expect(upstream.manifestRequests('GET', tagPath('v1'))).toHaveLength(2);
}, 60_000);

it('with the budget exhausted cached tags cost nothing; an uncached one gets TOOMANYREQUESTS with Retry-After', async () => {
  const bench = await benches.start();
  const { upstream, intercepted } = bench;
  await bench.pull('v1');
  upstream.setRemaining('anonymous', 0);

  // The upstream's 429 to a tag the cache does not hold: the client learns when to come back.
  const refused = await bench.ask(`/v2/${REPOSITORY}/manifests/single`);
  expect(refused.status, refused.body.toString()).toBe(429);
  expect(JSON.parse(refused.body.toString()).errors[0].code).toBe('TOOMANYREQUESTS');
  expect(refused.headers['retry-after']).toBe(RETRY_AFTER_SECONDS);
  const gets = upstream.manifestRequests('GET').length;

  // Cached tags: served (stale) without a GET, however often.
  for (let i = 0; i < 3; i++) {
    const answer = await bench.pull('v1');
    expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
  }
  expect(upstream.manifestRequests('GET')).toHaveLength(gets);
  expect(requestLines(bench, tagPath('v1')).slice(1).every((l) => l.cache === 'stale' && l.budget === 'exhausted')).toBe(true);
  expect(intercepted.layover.logs.filter((l) => /^Docker Hub pull budget exhausted/.test(l.msg))).toHaveLength(1);
}, 60_000);

it('a cached tag whose GET the upstream refuses with 429 is served stale as a 200, not with the 429', async () => {
  const bench = await benches.start();
  const { upstream } = bench;
  await bench.pull('v1');
  // Layover cannot see it coming: no budget headers, and the tag moved to a digest it does not hold.
  upstream.headers = {};
  upstream.tag('v1', benches.images.single.digest);
  upstream.setRemaining('anonymous', 0);

  const answer = await bench.ask(tagPath('v1'));
  expect(answer.status, answer.body.toString()).toBe(200);
  expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
  expect(answer.body.equals(benches.images.index.bytes)).toBe(true);
  expect(answer.headers['retry-after']).toBeUndefined();
  expect(upstream.manifestRequests('GET', tagPath('v1')).at(-1)).toMatchObject({ method: 'GET' });
  expect(requestLines(bench, tagPath('v1')).at(-1)).toMatchObject({ cache: 'stale', status: 200 });
}, 60_000);
