import { describe, expect, it } from 'vitest';
import type { CompletedRequest } from '../../../src/metrics/metrics.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, RequestHistory, WEEK_MS } from '../../../src/status/request-history.js';

/** A clock the test moves by hand, starting at a whole hour plus `offsetMs`. */
function clock(offsetMs = 0) {
  let now = Date.UTC(2026, 11, 1, 10) + offsetMs;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

const request = (fields: Partial<CompletedRequest> = {}): CompletedRequest => ({
  listener: 'https',
  route: 'blob',
  registry: 'registry.test',
  repository: 'library/alpine',
  cache: 'hit',
  status: 200,
  bytes: 100,
  error: undefined,
  ...fields,
});

describe('RequestHistory time buckets', () => {
  it('counts a request in the hour, the day and the week, and drops it from the hour after 60 minutes', () => {
    const t = clock(30 * 1000);
    const history = new RequestHistory({ now: t.now });
    history.record(request({ cache: 'hit', bytes: 100 }));
    history.record(request({ cache: 'miss', bytes: 40 }));
    for (const window of [HOUR_MS, DAY_MS, WEEK_MS]) {
      expect(history.totals(window)).toMatchObject({ requests: 2, hits: 1, misses: 1, bytesFromCache: 100, bytesFromUpstream: 40 });
    }
    // Rollover into the next minute: a new bucket, both still in the hour.
    t.advance(MINUTE_MS);
    history.record(request({ cache: 'hit', bytes: 1 }));
    expect(history.totals(HOUR_MS)).toMatchObject({ requests: 3, bytesFromCache: 101 });
    // 59 minutes after the first minute it is still in the last hour (60 whole minutes, the current one included)...
    t.advance(58 * MINUTE_MS);
    expect(history.totals(HOUR_MS).requests).toBe(3);
    // ...one more minute and the first minute's two requests leave the hour, not the day.
    t.advance(MINUTE_MS);
    expect(history.totals(HOUR_MS)).toMatchObject({ requests: 1, bytesFromCache: 1 });
    expect(history.totals(DAY_MS).requests).toBe(3);
  });

  it('rolls hours over into the day and the week, and forgets what is older than a week', () => {
    const t = clock();
    const history = new RequestHistory({ now: t.now });
    history.record(request({ bytes: 10 }));
    t.advance(HOUR_MS);
    history.record(request({ bytes: 20 }));
    expect(history.totals(DAY_MS)).toMatchObject({ requests: 2, bytesFromCache: 30 });
    t.advance(23 * HOUR_MS);
    // The first hour's bucket is now 24 hours back: out of the day, in the week.
    expect(history.totals(DAY_MS)).toMatchObject({ requests: 1, bytesFromCache: 20 });
    expect(history.totals(WEEK_MS)).toMatchObject({ requests: 2, bytesFromCache: 30 });
    t.advance(6 * DAY_MS);
    expect(history.totals(WEEK_MS)).toMatchObject({ requests: 1, bytesFromCache: 20 });
    t.advance(HOUR_MS);
    expect(history.totals(WEEK_MS).requests).toBe(0);
    // The memory is bounded too: a week of hourly buckets, an hour of minute buckets.
    for (let i = 0; i < 400; i++) {
      history.record(request());
      t.advance(HOUR_MS / 2);
    }
    const snapshot = history.snapshot();
    expect(snapshot.hours.length).toBeLessThanOrEqual(7 * 24);
    expect(snapshot.minutes.length).toBeLessThanOrEqual(60);
  });

  it('counts bytes by where /metrics says they came from: a replica relaying another’s fill saved the upstream too', () => {
    const history = new RequestHistory({ now: clock().now });
    history.record(request({ cache: 'miss', source: 'peer', bytes: 7 }));
    history.record(request({ cache: 'miss', source: 'upstream', bytes: 5 }));
    history.record(request({ cache: 'pass', bytes: 3 }));
    history.record(request({ cache: 'denied', bytes: 0, status: 403 }));
    expect(history.totals(HOUR_MS)).toMatchObject({ requests: 4, hits: 0, misses: 2, bytesFromCache: 7, bytesFromUpstream: 8, errors: 1 });
  });

  it('does not count Layover’s own routes (the status page refreshing itself) as registry requests', () => {
    const history = new RequestHistory({ now: clock().now });
    history.record(request({ registry: undefined, repository: undefined, route: 'status', cache: undefined }));
    expect(history.totals(HOUR_MS).requests).toBe(0);
  });

  it('counts evictions read off the counters in the bucket of their time', () => {
    const t = clock();
    const history = new RequestHistory({ now: t.now });
    history.recordEvictions(2, 2048);
    t.advance(2 * HOUR_MS);
    history.recordEvictions(1, 10);
    expect(history.totals(HOUR_MS)).toMatchObject({ evictions: 1, evictedBytes: 10 });
    expect(history.totals(DAY_MS)).toMatchObject({ evictions: 3, evictedBytes: 2058 });
  });
});

describe('RequestHistory top images and errors', () => {
  it('ranks repositories by pulls (manifest answers) and by bytes', () => {
    const history = new RequestHistory({ now: clock().now });
    for (let i = 0; i < 3; i++) history.record(request({ repository: 'a', route: 'manifest', bytes: 1 }));
    history.record(request({ repository: 'b', route: 'manifest', bytes: 1 }));
    history.record(request({ repository: 'b', route: 'blob', bytes: 5_000 }));
    expect(history.topImages('pulls', 10).map((u) => [u.image, u.pulls])).toEqual([['registry.test/a', 3], ['registry.test/b', 1]]);
    expect(history.topImages('bytes', 1).map((u) => [u.image, u.bytes])).toEqual([['registry.test/b', 5_001]]);
  });

  it('keeps at most maxImages repositories, dropping the least used', () => {
    const t = clock();
    const history = new RequestHistory({ now: t.now, maxImages: 100 });
    for (let i = 0; i < 5; i++) history.record(request({ repository: 'popular', route: 'manifest' }));
    for (let i = 0; i < 5_000; i++) {
      history.record(request({ repository: `once-${i}`, route: 'manifest' }));
      t.advance(1);
    }
    const kept = history.snapshot().images;
    expect(kept.length).toBeLessThanOrEqual(110);
    expect(kept.map((u) => u.image)).toContain('registry.test/popular');
    expect(history.topImages('pulls', 1)[0]).toMatchObject({ image: 'registry.test/popular', pulls: 5 });
  });

  it('keeps the last errors, newest first, without a token a URL carried', () => {
    const t = clock();
    const history = new RequestHistory({ now: t.now, maxErrors: 3 });
    history.record(request({ status: 401, cache: undefined }));
    history.record(request({ status: 200 }));
    for (let i = 0; i < 5; i++) {
      history.record(request({ status: 502, error: `upstream https://auth.example/token?service=x&token=SECRET${i} failed` }));
      t.advance(1000);
    }
    const errors = history.recentErrors(10);
    expect(errors).toHaveLength(3);
    expect(errors[0]!.message).toBe('upstream https://auth.example/token?service=x&token=[redacted] failed');
    expect(JSON.stringify(history.snapshot())).not.toContain('SECRET');
    expect(errors.map((e) => e.at)).toEqual([...errors.map((e) => e.at)].sort((a, b) => b - a));
  });

  it('takes a 401 that names its error (every login starts with one) for no error, and an answer cut off after a 200 for one', () => {
    const history = new RequestHistory({ now: clock().now });
    history.record(request({ status: 401, cache: undefined, error: 'UNAUTHORIZED: authentication required' }));
    history.record(request({ status: 404, cache: undefined, error: 'MANIFEST_UNKNOWN: manifest unknown' }));
    history.record(request({ status: 200, error: 'aborted' }));
    history.record(request({ route: 'prefetch', status: 502, error: 'UNAVAILABLE: upstream down' }));
    expect(history.recentErrors(10).map((e) => e.message)).toEqual(['aborted', 'MANIFEST_UNKNOWN: manifest unknown']);
    expect(history.totals(HOUR_MS).requests).toBe(3);
  });
});

describe('RequestHistory snapshots', () => {
  it('restores what it saved: the windows, the top images and the errors', () => {
    const t = clock();
    const before = new RequestHistory({ now: t.now });
    before.record(request({ route: 'manifest', bytes: 7 }));
    before.record(request({ status: 500, error: 'boom' }));
    const saved = JSON.parse(JSON.stringify(before.snapshot())) as unknown;
    t.advance(5 * MINUTE_MS);
    const after = new RequestHistory({ now: t.now });
    after.restore(saved);
    expect(after.totals(HOUR_MS)).toEqual(before.totals(HOUR_MS));
    expect(after.topImages('pulls', 5)).toEqual(before.topImages('pulls', 5));
    expect(after.recentErrors(5)).toEqual(before.recentErrors(5));
    expect(after.since).toBe(before.since);
  });

  it('takes nothing malformed from a tampered record and stays bounded', () => {
    const t = clock();
    const history = new RequestHistory({ now: t.now, maxImages: 10, maxErrors: 5 });
    history.restore({
      version: 1,
      since: -5,
      minutes: [{ start: 'soon', requests: 1 }, { start: t.now() - (t.now() % MINUTE_MS), requests: 1e300, hits: -1, misses: 2 }, null],
      hours: 'lots',
      images: [...Array.from({ length: 50 }, (_, i) => ({ image: `x${i}`, pulls: 1, bytes: 1, lastAt: 1 })), { image: { toString: 1 }, pulls: 1 }],
      errors: [...Array.from({ length: 50 }, () => ({ at: 1, status: 500, message: 'm'.repeat(10_000) })), { at: 'x' }],
    });
    expect(history.totals(HOUR_MS)).toMatchObject({ requests: 0, hits: 0, misses: 2 });
    expect(history.snapshot().images.length).toBeLessThanOrEqual(10);
    const errors = history.recentErrors(100);
    expect(errors).toHaveLength(5);
    expect(errors[0]!.message.length).toBeLessThanOrEqual(301);
    expect(history.since).toBeGreaterThan(0);
    for (const junk of [null, 'x', 42, { version: 2 }, []]) expect(() => history.restore(junk)).not.toThrow();
  });

  it('takes no time a Date cannot show (the page would fail on it for good): safe integers reach 9e15, dates 8.64e15', () => {
    const history = new RequestHistory({ now: clock().now });
    const far = 9e15;
    history.restore({ version: 1, since: far, minutes: [], hours: [], images: [{ image: 'r/a', pulls: 1, bytes: 1, lastAt: far }], errors: [{ at: far, status: 500, message: 'm' }] });
    expect(history.topImages('pulls', 5)).toEqual([]);
    expect(history.recentErrors(5)).toEqual([]);
    expect(() => new Date(history.since).toISOString()).not.toThrow();
  });
});
