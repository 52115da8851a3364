/**
 * Issue 12, the Docker Hub budget: the RateLimit headers of Docker Hub's answers reach /metrics on
 * the HTTP listener, per account (Layover's configured credential by name, a client's own
 * credentials as `client`, or `anonymous`; never a password) and source address, with the values
 * Docker Hub sent. Hostile headers (lists, garbage, negative or absurd counts, remaining above the
 * limit, a source that is no address) leave no series and harm nothing.
 */
import { expect, it } from 'vitest';
import { budgetBenchPerTest } from './budget-bench.js';
import { DOCKER_HUB_HOST } from './ratelimit-upstream.js';

const benches = budgetBenchPerTest();
const ACCOUNT_SOURCE = '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';

/** The budget series of an exposition: `name{labels} value` lines. */
const budgetSeries = (text: string): string[] => text.split('\n').filter((line) => line.startsWith('layover_docker_hub_ratelimit_'));

it('anonymous pulls (and clients\' anonymous tokens): the gauges show what the fixture sent, for the source it named', async () => {
  const bench = await benches.start();
  bench.upstream.setRemaining('anonymous', 61);
  const first = await bench.pull('v1');
  // The client whose pull Docker Hub counted sees the quota on the manifest's answer, as from Docker Hub itself.
  expect(first.headers['ratelimit-remaining']).toMatch(/^\d+;w=21600$/);
  expect(first.headers['docker-ratelimit-source']).toBe('127.0.0.1');
  // A client that fetched its own anonymous token: Docker Hub counts it by address too.
  await bench.pull('single', { authorization: 'Bearer an-anonymous-token-from-auth.docker.io' });
  const remaining = bench.upstream.remaining('anonymous');
  expect(remaining).toBe(61 - 1 - benches.images.platforms.length - 1);
  expect(budgetSeries(await bench.metrics())).toEqual([
    'layover_docker_hub_ratelimit_limit{account="anonymous",source="127.0.0.1"} 100',
    `layover_docker_hub_ratelimit_remaining{account="anonymous",source="127.0.0.1"} ${remaining}`,
  ]);
}, 60_000);

it('per account: Layover\'s configured credential by name, and a client\'s own credentials apart', async () => {
  const password = 'alice-secret-pw';
  // The fixture asks for Basic credentials: Layover sends alice's unless the client brings its own.
  const bench = await benches.start((port) => ({ AUTH_REGISTRIES: `${DOCKER_HUB_HOST}:${port}#alice#${password}`, AUTH_REGISTRY_DELIMITER: '#' }), { basicChallenge: true });
  const registry = `${DOCKER_HUB_HOST}:${bench.upstream.port}`;
  bench.upstream.setRemaining('alice', 77);
  bench.upstream.setRemaining('bob', 55);

  await bench.pull('v1');
  await bench.pull('latest', { authorization: `Basic ${Buffer.from('bob:bob-pw').toString('base64')}` });
  const alice = bench.upstream.remaining('alice');
  const bob = bench.upstream.remaining('bob');
  expect([alice, bob]).toEqual([77 - 1 - benches.images.platforms.length, 55]);

  const text = await bench.metrics();
  expect(budgetSeries(text)).toEqual([
    `layover_docker_hub_ratelimit_limit{account="alice@${registry}",source="${ACCOUNT_SOURCE}"} 100`,
    `layover_docker_hub_ratelimit_limit{account="client",source="${ACCOUNT_SOURCE}"} 100`,
    `layover_docker_hub_ratelimit_remaining{account="alice@${registry}",source="${ACCOUNT_SOURCE}"} ${alice}`,
    `layover_docker_hub_ratelimit_remaining{account="client",source="${ACCOUNT_SOURCE}"} ${bob}`,
  ]);
  expect(text).not.toContain(password);
}, 60_000);

it('malformed RateLimit headers are ignored: no series, no crash, and the next good answer is read', async () => {
  const bench = await benches.start();
  const hostile: Array<Record<string, string | string[]>> = [
    { 'ratelimit-limit': ['100;w=21600', '100;w=21600'], 'ratelimit-remaining': ['5;w=21600', '7;w=21600'] },
    { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '-5;w=21600' },
    { 'ratelimit-limit': '99999999999999999999999', 'ratelimit-remaining': '99999999999999999999' },
    { 'ratelimit-limit': 'lots', 'ratelimit-remaining': 'some;w=forever' },
    { 'ratelimit-limit': '100;w=21600, 3', 'ratelimit-remaining': '5garbage' },
    { 'ratelimit-limit': '100', 'ratelimit-remaining': '101' },
    { 'ratelimit-limit': '', 'ratelimit-remaining': '' },
  ];
  for (const headers of hostile) {
    bench.upstream.headers = headers;
    const answer = await bench.pull('v1');
    expect(answer.headers['docker-content-digest']).toBe(benches.images.index.digest);
  }
  expect(budgetSeries(await bench.metrics())).toEqual([]);
  expect(bench.intercepted.layover.logs.filter((l) => l.level >= 50)).toEqual([]);

  // A source no address and longer than one: the reading is kept, the label is not.
  bench.upstream.headers = { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '42;w=21600', 'docker-ratelimit-source': `<script>${'x'.repeat(300)}` };
  await bench.pull('v1');
  expect(budgetSeries(await bench.metrics())).toEqual([
    'layover_docker_hub_ratelimit_limit{account="anonymous",source=""} 100',
    'layover_docker_hub_ratelimit_remaining{account="anonymous",source=""} 42',
  ]);
}, 60_000);
