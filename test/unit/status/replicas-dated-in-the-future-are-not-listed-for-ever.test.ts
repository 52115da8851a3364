/**
 * The replicas' summaries come from the shared index, where anyone who can write it may put a record:
 * one dated far in the future was listed as seen for ever and never forgotten, filling the status
 * page's replica table. The records live in a Map here (what BlobCache's record calls do, without
 * a cache behind them).
 */
import { describe, expect, it } from 'vitest';
import type { BlobCache } from '../../../src/cache/blob-cache.js';
import { ReplicaSummaries, type ReplicaSummary } from '../../../src/status/replica-summaries.js';
import { totalsOf, WEEK_MS } from '../../../src/status/request-history.js';

const NOW = Date.UTC(2026, 11, 7, 12);

function recordsInMemory(): { cache: BlobCache; records: Map<string, unknown> } {
  const records = new Map<string, unknown>();
  const cache = {
    getRecord: (key: string) => records.get(key),
    setRecord: async (key: string, value: unknown) => void records.set(key, value),
    deleteRecord: async (key: string) => void records.delete(key),
    recordKeys: (prefix: string) => [...records.keys()].filter((key) => key.startsWith(prefix)),
  };
  return { cache: cache as unknown as BlobCache, records };
}

const summary = (name: string, at: number): ReplicaSummary => {
  const totals = totalsOf({});
  return { name, at, windows: { hour: totals, day: totals, week: totals }, cache: { bytes: 0, maxSize: 0, entries: 0 } };
};

describe('replica summaries dated in the future', () => {
  it('are not listed as seen beyond a clock skew of the seen window, and are forgotten at the next publication', async () => {
    const { cache, records } = recordsInMemory();
    const replicas = new ReplicaSummaries(cache, () => NOW);
    records.set('status/replica/ahead-a-minute', summary('ahead-a-minute', NOW + 60_000));
    records.set('status/replica/far-future', summary('far-future', 8.64e15));
    records.set('status/replica/next-year', summary('next-year', NOW + 2 * WEEK_MS));
    expect(replicas.seen().map((s) => s.name)).toEqual(['ahead-a-minute']);
    await replicas.publish(summary('me', NOW));
    expect([...records.keys()].sort()).toEqual(['status/replica/ahead-a-minute', 'status/replica/me']);
  });
});
