/**
 * A blob larger than CACHE_MAX_SIZE on its own can never fit: eviction takes it first. Taken in LRU
 * order (it is the newest, just committed), it evicted every other entry before itself, so one pull
 * of a large layer emptied the cache. Both ways of evicting: a lone Layover's (LruIndex.takeVictims)
 * and a replica's for the fleet under the eviction lease (BlobEviction over real blob files and the
 * in-process lease store).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlobEviction } from '../../../src/cache/blob-eviction.js';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { LocalLeaseStore } from '../../../src/cache/indexes/local-lease.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { storedBlobs } from './cache-fixture.js';

describe('a blob larger than the cap', () => {
  it('is the one victim of a lone Layover\'s eviction; the others stay', async () => {
    const { lru, digests } = await storedBlobs([100, 100, 100, 500]);
    expect(lru.takeVictims(400).map((entry) => entry.digest)).toEqual([digests[3]]);
    expect(lru.oldestFirst().map((entry) => entry.digest)).toEqual(digests.slice(0, 3));
    // An operator's pin keeps it: then the least recently used go, as before.
    const pinned = await storedBlobs([100, 100, 500]);
    expect(pinned.lru.takeVictims(450, new Set([pinned.digests[2]!])).map((entry) => entry.digest)).toEqual(pinned.digests.slice(0, 2));
  });

  it('is the one victim of a replica\'s eviction for the fleet; the others stay', async () => {
    const { store, lru, digests } = await storedBlobs([100, 100, 100, 500]);
    const removed: BlobEntry[] = [];
    const eviction = new BlobEviction(
      { logger: captureLogger().logger, lru, store, remove: async (victims) => void removed.push(...victims), isFilling: () => false, kept: async () => new Set<Digest>() },
      { maxSize: 400, leases: new LocalLeaseStore(randomUUID()), fleetCheckMs: 60_000 },
    );
    expect(await eviction.prune(400)).toEqual({ removed: 1, freedBytes: 500 });
    expect(removed.map((entry) => entry.digest)).toEqual([digests[3]]);
    expect(lru.oldestFirst().map((entry) => entry.digest)).toEqual(digests.slice(0, 3));
    await eviction.stop();
  });

  it('committed while a replica\'s pass runs, is its next victim; the others stay', async () => {
    const { store, lru, digests } = await storedBlobs([100, 100, 100, 100, 100, 100, 500]);
    const big = lru.delete(digests[6]!)!;
    const removed: BlobEntry[] = [];
    const eviction = new BlobEviction(
      {
        logger: captureLogger().logger,
        lru,
        store,
        remove: async (victims) => {
          // The large layer of the image commits while the first batch is being removed.
          if (removed.length === 0) lru.insert(big);
          removed.push(...victims);
        },
        isFilling: () => false,
        kept: async () => new Set<Digest>(),
      },
      { maxSize: 400, leases: new LocalLeaseStore(randomUUID()), fleetCheckMs: 60_000 },
    );
    await eviction.prune(400);
    expect(removed.map((entry) => entry.digest)).toEqual([digests[0], digests[1], digests[6]]);
    expect(lru.oldestFirst().map((entry) => entry.digest)).toEqual(digests.slice(2, 6));
    await eviction.stop();
  });
});
