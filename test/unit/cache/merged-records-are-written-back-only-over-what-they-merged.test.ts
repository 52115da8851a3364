/**
 * A record merged with another replica's value (CacheRecords.mergeUnder) is written back only while
 * the index still holds the value it was merged with and nothing changed it here: a record a purge
 * deleted meanwhile must not come back. CacheRecords with the real merge of access records; the
 * index is a scripted stand-in (what the index holds at the moment of the write-back is the point).
 */
import { describe, expect, it } from 'vitest';
import { mergeMemberRecords } from '../../../src/access/access-records.js';
import type { CacheIndex } from '../../../src/cache/cache-index.js';
import { CacheRecords } from '../../../src/cache/cache-records.js';
import type { ReplicaSync } from '../../../src/cache/replica-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const KEY = 'access:member:sha256:abc';
const LOCAL = ['@a.test', 'a.test/one'];
const REMOTE = ['@b.test', 'b.test/two'];

function replica(indexHolds: () => unknown): { records: CacheRecords; written: unknown[]; announced: unknown[]; settled: () => Promise<void> } {
  const written: unknown[] = [];
  const announced: unknown[] = [];
  let read: Promise<void> | undefined;
  const index = {
    readRecord: async () => {
      read = Promise.resolve();
      return indexHolds();
    },
    putRecord: async (_key: string, value: unknown) => void written.push(value),
  } as unknown as CacheIndex;
  const sync = { changing: () => undefined, announce: (change: unknown) => void announced.push(change) } as unknown as ReplicaSync;
  const records = new CacheRecords(new Map<string, unknown>([[KEY, LOCAL]]), { logger: captureLogger().logger, index, sync, assertOpen: () => undefined });
  records.mergeUnder('access:member:', mergeMemberRecords);
  // The write-back looked at the index, and everything it does after that has run (its awaits are on settled promises).
  const settled = async (): Promise<void> => {
    expect(read).toBeDefined();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { records, written, announced, settled };
}

describe('a merged record written back', () => {
  it('is written and announced while the index holds what it was merged with', async () => {
    const { records, written, announced, settled } = replica(() => REMOTE);
    records.synced.arrived(KEY, REMOTE);
    await settled();
    expect(records.get(KEY)).toEqual(['@b.test', '@a.test', 'b.test/two', 'a.test/one']);
    expect(written).toEqual([records.get(KEY)]);
    expect(announced).toEqual([{ type: 'record-set', key: KEY }]);
  });

  it('is not written once the index lost the record (a purge meanwhile), nor once the index or this replica changed it', async () => {
    for (const holds of [undefined, ['@c.test']]) {
      const { records, written, settled } = replica(() => holds);
      records.synced.arrived(KEY, REMOTE);
      await settled();
      expect(written).toEqual([]);
    }
    const { records, written, settled } = replica(() => REMOTE);
    records.synced.arrived(KEY, REMOTE);
    records.synced.delete(KEY);
    await settled();
    expect(written).toEqual([]);
  });
});
