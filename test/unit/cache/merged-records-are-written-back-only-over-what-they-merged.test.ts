/**
 * A record merged with another replica's value (CacheRecords.mergeUnder) is written back only where
 * the index still holds the value it was merged with when the write lands, a replay after an outage
 * included: a record a purge deleted meanwhile, or one another replica wrote newer, is left alone.
 * CacheRecords with the real merge of access records over a scripted index (what it holds is the
 * point); then the real KeyvCacheIndex over keyv's in-memory store, whose backend can be down.
 */
import Keyv from 'keyv';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { mergeMemberRecords } from '../../../src/access/access-records.js';
import { IndexWriteError, type CacheIndex } from '../../../src/cache/cache-index.js';
import { CacheRecords } from '../../../src/cache/cache-records.js';
import { type IndexBackend, KeyvCacheIndex } from '../../../src/cache/indexes/keyv-index.js';
import type { ReplicaSync } from '../../../src/cache/replica-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const KEY = 'access:member:sha256:abc';
const LOCAL = ['@a.test', 'a.test/one'];
const REMOTE = ['@b.test', 'b.test/two'];
const MERGED = ['@b.test', '@a.test', 'b.test/two', 'a.test/one'];

/** A replica whose index answers a conditional write by what `indexHolds` says, or fails it. */
function replica(indexHolds: () => unknown, fails = false) {
  const written: unknown[] = [];
  const announced: unknown[] = [];
  const asked: Array<{ expected: unknown; value: unknown }> = [];
  const index = {
    putRecordOver: async (_key: string, expected: unknown, value: unknown) => {
      asked.push({ expected, value });
      if (fails) throw new IndexWriteError('the backend is down');
      if (!isDeepStrictEqual(indexHolds(), expected)) return false;
      written.push(value);
      return true;
    },
  } as unknown as CacheIndex;
  const sync = { changing: () => undefined, announce: (change: unknown) => void announced.push(change) } as unknown as ReplicaSync;
  const log = captureLogger('debug');
  const records = new CacheRecords(new Map<string, unknown>([[KEY, LOCAL]]), { logger: log.logger, index, sync, assertOpen: () => undefined });
  records.mergeUnder('access:member:', mergeMemberRecords);
  return { records, written, announced, asked, lines: log.lines };
}

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('a merged record written back', () => {
  it('is written over the value it was merged with, and announced', async () => {
    const { records, written, announced, asked } = replica(() => REMOTE);
    records.synced.arrived(KEY, REMOTE);
    await settled();
    expect(records.get(KEY)).toEqual(MERGED);
    expect(asked).toEqual([{ expected: REMOTE, value: MERGED }]);
    expect(written).toEqual([MERGED]);
    expect(announced).toEqual([{ type: 'record-set', key: KEY }]);
  });

  it('is neither written nor announced once the index lost the record (a purge) or holds a newer one', async () => {
    for (const holds of [undefined, ['@c.test']]) {
      const { records, written, announced } = replica(() => holds);
      records.synced.arrived(KEY, REMOTE);
      await settled();
      expect(written).toEqual([]);
      expect(announced).toEqual([]);
    }
  });

  it('waits for the index quietly while it is down: no announcement, no warning', async () => {
    const { records, announced, asked, lines } = replica(() => REMOTE, true);
    records.synced.arrived(KEY, REMOTE);
    await settled();
    expect(asked).toHaveLength(1);
    expect(announced).toEqual([]);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
  });
});

describe('KeyvCacheIndex.putRecordOver', () => {
  function openIndex() {
    let up = true;
    const keyv = new Keyv<unknown>({ throwOnErrors: true, emitErrors: false });
    const backend: IndexBackend = {
      name: 'memory',
      keyv,
      connected: () => up,
      rows: async function* () {
        // Read back through keyv.
      },
      acquireLease: () => Promise.reject(new Error('no leases here')),
      leaseNote: () => Promise.resolve(null),
      close: () => Promise.resolve(),
    };
    const index = new KeyvCacheIndex(backend, captureLogger().logger, { retryMs: 10 });
    return { index, keyv, setUp: (value: boolean) => void (up = value) };
  }

  it('writes only over the expected value, and says whether it did', async () => {
    const { index, keyv } = openIndex();
    await index.putRecord(KEY, REMOTE);
    expect(await index.putRecordOver(KEY, ['@c.test'], MERGED)).toBe(false);
    expect(await keyv.get(`record:${KEY}`)).toEqual(REMOTE);
    expect(await index.putRecordOver(KEY, REMOTE, MERGED)).toBe(true);
    expect(await keyv.get(`record:${KEY}`)).toEqual(MERGED);
    expect(await index.putRecordOver('record-never-written', REMOTE, MERGED)).toBe(false);
    expect(await keyv.has('record:record-never-written')).toBe(false);
    await index.close();
  });

  it('applied in one batch after a write of the same key here, is judged against what that write leaves', async () => {
    const { index, keyv } = openIndex();
    const LATER = ['@c.test', 'c.test/three'];
    const row = async (): Promise<unknown> => keyv.get(`record:${KEY}`);
    await index.putRecord(KEY, REMOTE);
    // Issued together, these go to the backend as one batch: a write-back folded after a plain write
    // or a delete reads nothing from the backend (applied alone, it would read the row).
    const reads = vi.spyOn(keyv, 'getMany');
    expect((await Promise.all([index.putRecord(KEY, LATER), index.putRecordOver(KEY, REMOTE, MERGED)]))[1]).toBe(false);
    expect(await row()).toEqual(LATER);
    expect((await Promise.all([index.putRecord(KEY, REMOTE), index.putRecordOver(KEY, REMOTE, MERGED)]))[1]).toBe(true);
    expect(await row()).toEqual(MERGED);
    // A purge's delete stays a delete.
    expect((await Promise.all([index.deleteRecord(KEY), index.putRecordOver(KEY, MERGED, LATER)]))[1]).toBe(false);
    expect(await keyv.has(`record:${KEY}`)).toBe(false);
    expect(reads).not.toHaveBeenCalled();
    // Two write-backs in one batch: the second is judged against what the first leaves (one read of the row for both).
    await index.putRecord(KEY, REMOTE);
    expect(await Promise.all([index.putRecordOver(KEY, REMOTE, MERGED), index.putRecordOver(KEY, MERGED, LATER)])).toEqual([true, true]);
    expect(await row()).toEqual(LATER);
    expect(await Promise.all([index.putRecordOver(KEY, REMOTE, MERGED), index.putRecordOver(KEY, LATER, REMOTE)])).toEqual([false, true]);
    expect(await row()).toEqual(REMOTE);
    expect(reads).toHaveBeenCalledTimes(2);
    await index.close();
  });

  // Another replica's newer value lands during the outage, or nothing does; then the backend answers this replica again.
  // Only a replay that wrote something tells the other replicas to read the index again.
  it.each([
    { meanwhile: ['@c.test'], lands: ['@c.test'], announced: false, what: 'leaves alone a value another replica wrote meanwhile' },
    { meanwhile: undefined, lands: MERGED, announced: true, what: 'lands where the value it was merged with is still there' },
  ])('replayed after an outage, $what', async ({ meanwhile, lands, announced }) => {
    const { index, keyv, setUp } = openIndex();
    await index.putRecord(KEY, REMOTE);
    setUp(false);
    await expect(index.putRecordOver(KEY, REMOTE, MERGED)).rejects.toThrow(IndexWriteError);
    if (meanwhile) await keyv.set(`record:${KEY}`, meanwhile);
    let replayed = false;
    index.onReplayed(() => (replayed = true));
    setUp(true);
    await vi.waitFor(() => expect(index.pendingWrites).toBe(0));
    expect(await keyv.get(`record:${KEY}`)).toEqual(lands);
    expect(replayed).toBe(announced);
    await index.close();
  });
});
