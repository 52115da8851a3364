/**
 * The fleet's eviction (BlobEviction with leases) on its own, over real blob files and the in-process
 * lease store every index can fall back on: a run that loses its lease mid-way (it ran out while a batch
 * was slow, and someone else took it) stops before its next batch, and a victim whose object another
 * holder already removed is only forgotten here, never removed (nor announced) a second time; one
 * asked for again while the store answered (adopted back from its row, or being fetched) is not removed.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { BlobEviction, EVICTION_LEASE } from '../../../src/cache/blob-eviction.js';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { FileBlobStore } from '../../../src/cache/blob-stores/file.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { LocalLeaseStore } from '../../../src/cache/indexes/local-lease.js';
import { LruIndex } from '../../../src/cache/lru-index.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, tempDir, until } from './cache-fixture.js';

const TTL_MS = 300;

async function fleetOf(count: number) {
  const layout = new CacheLayout(await tempDir());
  await mkdir(layout.tmpDir, { recursive: true });
  const store = new FileBlobStore(layout);
  const lru = new LruIndex();
  const entries: BlobEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const { bytes, digest } = blob(10);
    const spool = layout.tmpPath(digest);
    await writeFile(spool, bytes);
    await store.beginUpload(digest, spool).commit(bytes.length);
    const entry: BlobEntry = { digest, size: bytes.length, mediaType: null, kind: 'blob', created: i, lastAccess: i, source: 'quay.io/org/repo' };
    entries.push(entry);
  }
  lru.load([...entries]);
  return { store, lru, entries, leases: new LocalLeaseStore(randomUUID()) };
}

describe('fleet eviction under its lease', () => {
  it('stops before its next batch once the lease is lost', async () => {
    const { store, lru, leases } = await fleetOf(40);
    const { logger, lines } = captureLogger();
    const removals: BlobEntry[][] = [];
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const eviction = new BlobEviction(
      {
        logger,
        lru,
        store,
        remove: async (victims) => {
          removals.push(victims);
          await gate;
        },
        isFilling: () => false,
      },
      { maxSize: 0, leases, leaseTtlMs: TTL_MS, fleetCheckMs: 60_000 },
    );
    const run = eviction.evict(0);
    await until(() => removals.length === 1);
    // The first batch is slow: the lease runs out and another replica takes it.
    let taken = await leases.acquireLease(EVICTION_LEASE, 60_000);
    while (!taken) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      taken = await leases.acquireLease(EVICTION_LEASE, 60_000);
    }
    openGate();
    const result = await run;
    expect(removals.length).toBe(1);
    expect(result.removed).toBe(removals[0]!.length);
    expect(lru.count).toBe(40 - removals[0]!.length);
    expect(lines.some((l) => l.msg === 'cache eviction stopped: the eviction lease was lost')).toBe(true);
    await taken.release();
    await eviction.stop();
  });

  it('does not evict at all while another holder has the lease', async () => {
    const { store, lru, leases } = await fleetOf(3);
    const held = await leases.acquireLease(EVICTION_LEASE, 60_000);
    const removals: BlobEntry[][] = [];
    const eviction = new BlobEviction({ logger: captureLogger().logger, lru, store, remove: async (victims) => void removals.push(victims), isFilling: () => false }, { maxSize: 0, leases, fleetCheckMs: 60_000 });
    expect(await eviction.evict(0)).toEqual({ removed: 0, freedBytes: 0 });
    expect(removals).toEqual([]);
    expect(lru.count).toBe(3);
    await held!.release();
    expect(await eviction.evict(0)).toMatchObject({ removed: 3 });
    await eviction.stop();
  });

  it('forgets a victim another holder already removed, without removing it again', async () => {
    const { store, lru, entries, leases } = await fleetOf(3);
    await store.remove(entries[0]!.digest);
    const removals: BlobEntry[][] = [];
    const eviction = new BlobEviction({ logger: captureLogger().logger, lru, store, remove: async (victims) => void removals.push(victims), isFilling: () => false }, { maxSize: 10, leases, fleetCheckMs: 60_000 });
    expect(await eviction.evict(10)).toEqual({ removed: 1, freedBytes: 10 });
    expect(removals.flat().map((entry) => entry.digest)).toEqual([entries[1]!.digest]);
    expect(lru.oldestFirst().map((entry) => entry.digest)).toEqual([entries[2]!.digest]);
    await eviction.stop();
  });

  it('does not remove a victim asked for again while the store answered: adopted back from its row, or being fetched again', async () => {
    const { store, lru, entries, leases } = await fleetOf(4);
    const [adopted, fetched, victim, newest] = entries as [BlobEntry, BlobEntry, BlobEntry, BlobEntry];
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const stat = store.stat.bind(store);
    let asked = 0;
    store.stat = async (digest) => {
      asked += 1;
      await gate;
      return stat(digest);
    };
    const filling = new Set<string>();
    const removals: BlobEntry[][] = [];
    const eviction = new BlobEviction(
      { logger: captureLogger().logger, lru, store, remove: async (victims) => void removals.push(victims), isFilling: (digest) => filling.has(digest) },
      { maxSize: 10, leases, fleetCheckMs: 60_000 },
    );
    // Down to 10 bytes: a first batch of the three oldest.
    const run = eviction.evict(10);
    await until(() => asked === 3);
    // A client's miss meanwhile: one is taken in again from its row (BlobReader.lookUp), one fetched anew.
    lru.insert({ ...adopted, lastAccess: Date.now() });
    filling.add(fetched.digest);
    openGate();
    await run;
    // The adopted one is the newest now: the run's next batch took the one that then was the oldest.
    expect(removals.map((batch) => batch.map((entry) => entry.digest))).toEqual([[victim.digest], [newest.digest]]);
    expect(lru.get(adopted.digest)).toBeDefined();
    expect(await stat(adopted.digest)).not.toBeNull();
    expect(await stat(fetched.digest)).not.toBeNull();
    await eviction.stop();
  });
});
