import { afterEach, describe, expect, it, vi } from 'vitest';
import { type CompletedRequest, Metrics } from '../../../src/metrics/metrics.js';
import { RequestTally, TALLY_FLUSH_MS } from '../../../src/metrics/request-tally.js';
import { RequestHistory } from '../../../src/status/request-history.js';
import { parseExposition } from './exposition.js';

const hit = (bytes: number): CompletedRequest => ({ listener: 'https', route: 'manifest', registry: 'registry.test', repository: 'team/app', cache: 'hit', status: 200, bytes, source: 'cache', error: undefined });

afterEach(() => void vi.useRealTimers());

describe('RequestTally', () => {
  it('counts each request object once per flush, as many times as it was added', () => {
    const counted: Array<[CompletedRequest, number]> = [];
    const tally = new RequestTally((request, times) => counted.push([request, times]));
    const [a, b] = [hit(10), hit(20)];
    for (const request of [a, b, a, a]) tally.add(request);
    expect(counted).toEqual([]);
    tally.flush();
    expect(counted).toEqual([[a, 3], [b, 1]]);
    tally.flush();
    expect(counted).toHaveLength(2);
  });

  it('counts what waits within TALLY_FLUSH_MS when nobody reads the counts', () => {
    vi.useFakeTimers();
    const counted: number[] = [];
    const tally = new RequestTally((_request, times) => counted.push(times));
    const a = hit(10);
    tally.add(a);
    tally.add(a);
    vi.advanceTimersByTime(TALLY_FLUSH_MS - 1);
    expect(counted).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(counted).toEqual([2]);
    tally.add(a);
    vi.advanceTimersByTime(TALLY_FLUSH_MS);
    expect(counted).toEqual([2, 1]);
  });
});

describe('tallied requests in /metrics and the history', () => {
  it('are counted as often as they were tallied before /metrics is read, bytes times the count', async () => {
    const metrics = new Metrics();
    const history = new RequestHistory();
    metrics.onRequest((request, times) => history.record(request, times));
    const a = hit(500);
    for (let i = 0; i < 7; i++) metrics.tallyRequest(a);
    metrics.recordRequest(hit(500));
    const series = parseExposition((await metrics.exposition()).body);
    expect(series.find((s) => s.name === 'layover_requests_total' && s.labels.cache === 'hit')?.value).toBe(8);
    expect(series.find((s) => s.name === 'layover_served_bytes_total' && s.labels.source === 'cache')?.value).toBe(4000);
    expect(history.totals(60_000)).toMatchObject({ requests: 8, hits: 8, bytesFromCache: 4000 });
    expect(history.topImages('pulls', 1)).toMatchObject([{ image: 'registry.test/team/app', pulls: 8, bytes: 4000 }]);
  });
});
