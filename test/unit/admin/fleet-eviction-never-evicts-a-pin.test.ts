/**
 * A replica of a shared index evicts for the whole fleet under the eviction lease (BlobEviction with
 * leases), over real blob files and the in-process lease store: pinned digests are stepped over, and a
 * run with only pinned blobs left over the cap ends (it would otherwise take empty batches forever).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlobEviction } from '../../../src/cache/blob-eviction.js';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { LocalLeaseStore } from '../../../src/cache/indexes/local-lease.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { storedBlobs } from '../cache/cache-fixture.js';

describe('fleet eviction and pins', () => {
  it('steps over pinned digests, oldest first among the rest, and ends with only pins over the cap', async () => {
    const { store, lru, digests } = await storedBlobs([100, 100, 100, 100]);
    const pinned = new Set([digests[0]!, digests[2]!]);
    const removed: BlobEntry[] = [];
    const eviction = new BlobEviction(
      { logger: captureLogger().logger, lru, store, remove: async (victims) => void removed.push(...victims), isFilling: () => false, kept: async () => pinned },
      { maxSize: 0, leases: new LocalLeaseStore(randomUUID()), fleetCheckMs: 60_000 },
    );
    const result = await eviction.prune(0);
    expect(result).toEqual({ removed: 2, freedBytes: 200 });
    expect(removed.map((entry) => entry.digest)).toEqual([digests[1], digests[3]]);
    expect(new Set(lru.oldestFirst().map((entry) => entry.digest))).toEqual(pinned);
    // Over the cap with nothing left to take: the next run ends at once.
    expect(await eviction.prune(0)).toEqual({ removed: 0, freedBytes: 0 });
    await eviction.stop();
  });

  it('evicts nothing when the pinned digests cannot be worked out', async () => {
    const { store, lru } = await storedBlobs([100, 100]);
    const { logger, lines } = captureLogger();
    const eviction = new BlobEviction(
      { logger, lru, store, remove: async () => undefined, isFilling: () => false, kept: () => Promise.reject(new Error('manifest unreadable')) },
      { maxSize: 0, leases: new LocalLeaseStore(randomUUID()), fleetCheckMs: 60_000 },
    );
    expect(await eviction.evict(0)).toEqual({ removed: 0, freedBytes: 0 });
    expect(lru.count).toBe(2);
    expect(lines.some((line) => line.msg === 'cache eviction skipped: the pinned digests could not be worked out')).toBe(true);
    await eviction.stop();
  });
});
