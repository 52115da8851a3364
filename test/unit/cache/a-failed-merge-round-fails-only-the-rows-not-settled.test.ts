/**
 * KeyvCacheIndex's merging writes on a backend with a compare-and-set: a row another replica changed
 * under the merge is merged again, and when a later round's call fails, only the rows not settled by
 * then fail (one written in an earlier round was written: its caller must hear so, and a replay would
 * find nothing to do). The compare-and-set here is a fixture over a Map that stands for the shared
 * backend, so a change and a failure can be put between the rounds; the real ones (Redis, Postgres)
 * are tested in test/integration/cache/merging-writes-land-only-over-the-row-they-read.test.ts.
 */
import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { KeyvCacheIndex } from '../../../src/cache/indexes/keyv-index.js';
import { decodeValue } from '../../../src/cache/indexes/index-rows.js';
import type { RowSwap, StoredRow, SwapRow } from '../../../src/cache/indexes/row-swap.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { entry } from './cache-index-suite.js';

/** Rows by key; a row's version is its text. `beforeRead`/`beforeWrite` run before each call (they may throw). */
class MapSwap implements RowSwap {
  readonly rows = new Map<string, string>();
  beforeRead: () => void = () => undefined;
  beforeWrite: () => void = () => undefined;

  async read(keys: readonly string[]): Promise<Array<StoredRow | null>> {
    this.beforeRead();
    return keys.map((key) => {
      const text = this.rows.get(key);
      return text === undefined ? null : { text, version: text };
    });
  }

  async write(rows: readonly SwapRow[]): Promise<boolean[]> {
    this.beforeWrite();
    return rows.map(({ key, version, text }) => {
      if ((this.rows.get(key) ?? null) !== version) return false;
      this.rows.set(key, text);
      return true;
    });
  }
}

function openIndex(): { index: KeyvCacheIndex; swap: MapSwap } {
  const swap = new MapSwap();
  const index = new KeyvCacheIndex(
    {
      name: 'memory with a compare-and-set',
      keyv: new Keyv<unknown>({ throwOnErrors: true, emitErrors: false }),
      rows: async function* () {
        // Not loaded here.
      },
      acquireLease: () => Promise.reject(new Error('no leases here')),
      leaseNote: () => Promise.resolve(null),
      swap,
      close: () => Promise.resolve(),
    },
    captureLogger().logger,
    // No replay during the test: what is kept is looked at, not replayed.
    { retryMs: 60_000 },
  );
  return { index, swap };
}

const lastAccessOf = (swap: MapSwap, key: string): unknown => (decodeValue(swap.rows.get(key)) as { lastAccess?: unknown }).lastAccess;

describe('merging writes over a compare-and-set', () => {
  it('merge a row changed under them again, keeping the later access time', async () => {
    const { index, swap } = openIndex();
    const a = entry(1, 100);
    let writes = 0;
    swap.beforeWrite = () => {
      // Another replica writes a later access between this index's first read and its write.
      if ((writes += 1) === 1) swap.rows.set(`blob:${a.digest}`, JSON.stringify({ value: { ...a, digest: undefined, lastAccess: 500 } }));
    };
    expect(await index.putEntries([a])).toEqual([]);
    expect(writes).toBe(2);
    expect(lastAccessOf(swap, `blob:${a.digest}`)).toBe(500);
    await index.close();
  });

  it('fail only the rows still unsettled when a later round fails, not one an earlier round wrote', async () => {
    const { index, swap } = openIndex();
    const [a, b] = [entry(1, 100), entry(2, 100)];
    let reads = 0;
    swap.beforeRead = () => {
      if ((reads += 1) === 2) throw new Error('connection lost');
    };
    swap.beforeWrite = () => swap.rows.set(`blob:${b.digest}`, JSON.stringify({ value: { lastAccess: 1 } }));
    expect(await index.putEntries([a, b])).toEqual([b.digest]);
    expect(lastAccessOf(swap, `blob:${a.digest}`)).toBe(100);
    expect(index.pendingWrites).toBe(1);
    await index.close().catch(() => undefined);
  });

  it('give up on a row changed under every round, failing it alone', async () => {
    const { index, swap } = openIndex();
    const [a, b] = [entry(1, 100), entry(2, 100)];
    let other = 0;
    swap.beforeWrite = () => swap.rows.set(`blob:${b.digest}`, JSON.stringify({ value: { lastAccess: (other += 1) } }));
    expect(await index.putEntries([a, b])).toEqual([b.digest]);
    expect(lastAccessOf(swap, `blob:${a.digest}`)).toBe(100);
    await index.close().catch(() => undefined);
  });
});
