import { describe, expect, it } from 'vitest';
import { type PageAnswer, prefetchedPages } from '../../../src/cache/indexes/prefetched-pages.js';

/** A table of `total` numbered rows read in pages; `events` records each fetch and each parse, in order. */
function table(total: number, failAfter?: number): { events: string[]; fetch: (after: number, limit: number) => Promise<PageAnswer<number>> } {
  const events: string[] = [];
  const fetch = async (after: number, limit: number): Promise<PageAnswer<number>> => {
    events.push(`fetch after ${after}`);
    await new Promise((resolve) => setImmediate(resolve));
    if (failAfter !== undefined && after >= failAfter) throw new Error(`page after ${after} failed`);
    const rows = Array.from({ length: Math.max(0, Math.min(limit, total - after)) }, (_, i) => after + i + 1);
    return {
      count: rows.length,
      last: rows.at(-1) ?? after,
      rows: () => {
        events.push(`parse after ${after}`);
        return rows;
      },
    };
  };
  return { events, fetch };
}

describe('prefetchedPages', () => {
  it('asks for the next page before the page that came back is parsed and read', async () => {
    const { events, fetch } = table(25);
    const seen: number[] = [];
    for await (const rows of prefetchedPages(fetch, 10)) {
      events.push(`read ${rows.length}`);
      seen.push(...rows);
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(events).toEqual([
      'fetch after 0',
      'fetch after 10',
      'parse after 0',
      'read 10',
      'fetch after 20',
      'parse after 10',
      'read 10',
      'parse after 20',
      'read 5',
    ]);
  });

  it('asks for one more page when the last one was full, and ends at an empty one', async () => {
    const { events, fetch } = table(20);
    const pages: number[][] = [];
    for await (const rows of prefetchedPages(fetch, 10)) pages.push(rows);
    expect(pages.map((rows) => rows.length)).toEqual([10, 10, 0]);
    expect(events.filter((event) => event.startsWith('fetch'))).toEqual(['fetch after 0', 'fetch after 10', 'fetch after 20']);
  });

  it('rejects the read of a page that failed', async () => {
    const { fetch } = table(30, 10);
    const seen: number[] = [];
    const read = (async () => {
      for await (const rows of prefetchedPages(fetch, 10)) seen.push(...rows);
    })();
    await expect(read).rejects.toThrow('page after 10 failed');
    expect(seen).toHaveLength(10);
  });

  it('leaves no unhandled rejection when the reader stops before a page asked for ahead fails', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { events, fetch } = table(30, 10);
      for await (const rows of prefetchedPages(fetch, 10)) {
        expect(rows).toHaveLength(10);
        break;
      }
      expect(events).toContain('fetch after 10');
      // Past the failing fetch's settling and a turn for Node to report what nobody handled.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
