/**
 * Docker Hub's RateLimit headers are an upstream's word, read on every answer: a list, garbage, a
 * negative or absurd count, a remaining above the limit, or a source that is no address must leave
 * no reading, and no number of accounts or sources may grow the readings (and /metrics) without
 * bound. A reading counts only for its window, a 429 only for its (bounded) Retry-After, and the
 * warnings come once per crossing.
 */
import { expect, it } from 'vitest';
import { Metrics } from '../../../src/metrics/metrics.js';
import { DockerHubBudget, MAX_BUDGET_READINGS } from '../../../src/upstream/docker-hub-budget.js';
import { captureLogger } from '../../helpers/capture-logger.js';

function budget(low = 20) {
  let now = Date.parse('2026-12-03T12:00:00Z');
  const { logger, lines } = captureLogger();
  const metrics = new Metrics();
  const hub = new DockerHubBudget({ low, logger, metrics, now: () => now });
  const series = async (): Promise<string[]> => (await metrics.exposition()).body.split('\n').filter((l) => l.startsWith('layover_docker_hub_ratelimit_'));
  return { hub, lines, series, advance: (ms: number) => void (now += ms), now: () => now };
}
const quota = (limit: string | string[], remaining: string | string[], source?: string | string[]) => ({ 'ratelimit-limit': limit, 'ratelimit-remaining': remaining, ...(source === undefined ? {} : { 'docker-ratelimit-source': source }) });

it.each([
  ['repeated headers', quota(['100;w=21600', '100;w=21600'], ['5;w=21600', '6;w=21600'])],
  ['a list in one header', quota('100;w=21600, 3', '5;w=21600')],
  ['trailing garbage', quota('100;w=21600', '5garbage')],
  ['a negative count', quota('100;w=21600', '-5;w=21600')],
  ['an absurd count', quota('100;w=21600', '99999999999999999999')],
  ['remaining above the limit', quota('100', '101')],
  ['a zero limit', quota('0', '0')],
  ['no numbers at all', quota('lots', 'some;w=forever')],
])('%s: no reading, no series', async (_case, headers) => {
  const { hub, series } = budget();
  hub.observe('anonymous', headers);
  expect(hub.readings()).toEqual([]);
  expect(hub.isLow('anonymous')).toBe(false);
  expect(await series()).toEqual([]);
});

it('a source that is neither an address nor an account id is no label', () => {
  const { hub } = budget();
  for (const source of ['evil-label', `<b>${'x'.repeat(40)}`, '1.2.3.4 5.6.7.8', ['1.2.3.4', '5.6.7.8']]) hub.observe('anonymous', quota('100', '50', source));
  hub.observe('alice@registry-1.docker.io', quota('100', '40', '2001:DB8::1'));
  expect(hub.readings().map((r) => [r.account, r.source])).toEqual([
    ['anonymous', ''],
    ['alice@registry-1.docker.io', '2001:db8::1'],
  ]);
});

it(`many accounts and sources keep at most ${MAX_BUDGET_READINGS} readings and series`, async () => {
  const { hub, series } = budget();
  for (let i = 0; i < 1000; i++) hub.observe(`account-${i}`, quota('100', '50', `10.0.${i >> 8}.${i & 255}`));
  expect(hub.readings()).toHaveLength(MAX_BUDGET_READINGS);
  expect(await series()).toHaveLength(2 * MAX_BUDGET_READINGS);
  // The newest stay.
  expect(hub.readings().at(-1)).toMatchObject({ account: 'account-999', source: '10.0.3.231' });
});

it('low follows the latest reading, and only within its window', () => {
  const { hub, advance } = budget(20);
  hub.observe('anonymous', quota('100;w=3600', '10;w=3600', '1.2.3.4'));
  expect(hub.isLow('anonymous')).toBe(true);
  expect(hub.isLow('alice')).toBe(false);
  hub.observe('anonymous', quota('100;w=3600', '80;w=3600', '1.2.3.5'));
  expect(hub.isLow('anonymous')).toBe(false);
  hub.observe('anonymous', quota('100;w=3600', '0;w=3600', '1.2.3.4'));
  expect([hub.isLow('anonymous'), hub.isExhausted('anonymous')]).toEqual([true, true]);
  advance(3600_000 + 1);
  expect([hub.isLow('anonymous'), hub.isExhausted('anonymous')]).toEqual([false, false]);
});

it('a 429 exhausts the account for its Retry-After, bounded, and a good reading ends it', () => {
  const { hub, advance, now } = budget();
  hub.observeRefusal('anonymous', { 'retry-after': '120' });
  expect(hub.isExhausted('anonymous')).toBe(true);
  advance(121_000);
  expect(hub.isExhausted('anonymous')).toBe(false);

  hub.observeRefusal('anonymous', { 'retry-after': new Date(now() + 30_000).toUTCString() });
  advance(29_000);
  expect(hub.isExhausted('anonymous')).toBe(true);
  advance(2_000);
  expect(hub.isExhausted('anonymous')).toBe(false);

  // A year is not believed: six hours at most.
  hub.observeRefusal('anonymous', { 'retry-after': String(365 * 86_400) });
  advance(6 * 3600_000 + 1);
  expect(hub.isExhausted('anonymous')).toBe(false);

  hub.observeRefusal('anonymous', { 'retry-after': 'soon' });
  expect(hub.isExhausted('anonymous')).toBe(true);
  hub.observe('anonymous', quota('100', '30'));
  expect(hub.isExhausted('anonymous')).toBe(false);
});

it('warns once when crossing DOCKER_HUB_BUDGET_LOW, again only after recovering; once when exhausted', () => {
  const { hub, lines, advance } = budget(20);
  const warnings = (pattern: RegExp) => lines.filter((l) => pattern.test(l.msg));
  for (const remaining of [30, 21, 19, 18, 5]) hub.observe('anonymous', quota('100', String(remaining), '1.2.3.4'));
  expect(warnings(/budget low/)).toHaveLength(1);
  expect(warnings(/budget low/)[0]).toMatchObject({ account: 'anonymous', source: '1.2.3.4', remaining: 19, limit: 100 });
  hub.observe('anonymous', quota('100', '90', '1.2.3.4'));
  hub.observe('anonymous', quota('100', '10', '1.2.3.4'));
  expect(warnings(/budget low/)).toHaveLength(2);

  // A low reading past its window does not silence the next crossing.
  advance(6 * 3600_000 + 1);
  hub.observe('anonymous', quota('100', '12', '1.2.3.4'));
  expect(warnings(/budget low/)).toHaveLength(3);

  hub.observe('anonymous', quota('100', '0', '1.2.3.4'));
  hub.observeRefusal('anonymous', { ...quota('100', '0', '1.2.3.4'), 'retry-after': '60' });
  hub.observeRefusal('anonymous', { 'retry-after': '60' });
  expect(warnings(/budget exhausted/)).toHaveLength(1);
});

it('a client\'s own token counted per address spends the address\'s (anonymous) budget; one counted per account is `client`', () => {
  const { hub } = budget(20);
  hub.observe('client', quota('100', '10', '203.0.113.7'));
  expect(hub.readings().map((r) => [r.account, r.source, r.remaining])).toEqual([['anonymous', '203.0.113.7', 10]]);
  // Anonymous pulls of Layover's own and clients' anonymous tokens share it.
  expect([hub.isLow('anonymous'), hub.isLow('client'), hub.isLow('alice@registry-1.docker.io')]).toEqual([true, true, false]);

  hub.observe('anonymous', quota('100', '90', '203.0.113.7'));
  hub.observe('client', quota('100', '5', '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9'));
  expect([hub.isLow('anonymous'), hub.isLow('client')]).toEqual([false, true]);
  expect(hub.readings().map((r) => r.account)).toEqual(['anonymous', 'client']);
});
