/**
 * Eviction over a shared index (a real redis-server, a real Postgres) and one bucket (s3rver): every
 * replica's LRU mirrors the whole fleet, so replicas that each evicted after their own commits would each
 * remove the fleet's excess and leave it far below the cap. Eviction runs only under the `evict` lease:
 * while someone else holds it no replica evicts (they try, and stand down); once it is free one replica at
 * a time brings the fleet back under CACHE_MAX_SIZE, and no blob is removed (and announced) twice. A
 * replica whose read finds an object gone (evicted elsewhere, the news not there yet) only forgets it:
 * the row may be a new fill's, written just before its commit.
 */
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { BlobCacheOpenOptions } from '../../../src/cache/blob-cache.js';
import { EVICTION_LEASE } from '../../../src/cache/blob-eviction.js';
import type { CacheIndex, IndexChange } from '../../../src/cache/cache-index.js';
import type { CacheIndexConfig } from '../../../src/config/shared-stores.js';
import { digestHex } from '../../../src/registry/digest.js';
import { blob, collect, meta, openCache, until, type OpenedCache } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials, type S3Fixture } from '../../unit/cache/s3rver-fixture.js';
import { indexConfigOf, openTestIndex, sharedIndexServers } from './shared-index-servers.js';

const servers = sharedIndexServers();

/** A hang guard for messages between processes on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;
const CAP = 1_000;
const SIZE = 300;

/** The shared index as an outside observer: it holds leases and hears every replica's announcements. */
async function observer(cacheIndex: CacheIndexConfig): Promise<{ index: CacheIndex; removed: string[] }> {
  const index = await openTestIndex(cacheIndex);
  const removed: string[] = [];
  await index.feed!.subscribe({
    change: (change: IndexChange) => {
      if (change.type === 'removed') removed.push(...change.digests);
    },
    resubscribed: () => undefined,
  });
  return { index, removed };
}

/** Waits until the bucket holds at most `cap` bytes of blobs: the evictor deletes after it announces. */
async function settledObjects(s3: S3Fixture, cap: number): Promise<void> {
  const deadline = Date.now() + ARRIVES_WITHIN_MS;
  while ((await s3.objects()).length * SIZE > cap) {
    if (Date.now() > deadline) throw new Error('the bucket stayed over the cap');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.each(servers)('fleet eviction over a shared %s index', (name, server) => {
  const fleet = async (test: string, replicas: number) => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const cacheIndex = indexConfigOf(server());
    const options: Partial<BlobCacheOpenOptions> = { blobStore: s3.config(`${name}-${test}`), cacheIndex, maxSize: CAP, fleetEvictionCheckMs: 100 };
    const watching = await observer(cacheIndex);
    const caches: OpenedCache[] = [];
    for (let i = 0; i < replicas; i += 1) caches.push(await openCache(options));
    return { s3, caches, ...watching };
  };

  it('no replica evicts while another holds the lease; then the fleet ends under the cap, each blob removed once', async () => {
    const { s3, caches, index, removed } = await fleet('held', 3);
    const held = await index.acquireLease(EVICTION_LEASE, 60_000);
    expect(held).not.toBeNull();
    const blobs = Array.from({ length: 6 }, () => blob(SIZE));
    // Two rounds of commits on three replicas: 1,800 bytes for a cap of 1,000.
    for (const round of [0, 3]) await Promise.all(caches.map(({ cache }, i) => cache.put(blobs[round + i]!.digest, blobs[round + i]!.bytes, meta())));
    await until(() => caches.every(({ cache }) => cache.stats().entries === 6), ARRIVES_WITHIN_MS);
    // Every replica found itself over the cap and stood down for the lease's holder.
    const stoodDown = (logs: OpenedCache['logs']) => logs.some((l) => l.msg === 'cache eviction: another replica holds the eviction lease');
    await until(() => caches.every(({ logs }) => stoodDown(logs)), ARRIVES_WITHIN_MS);
    expect((await s3.objects()).length).toBe(6);
    expect(removed).toEqual([]);

    await held!.release();
    await until(() => caches.every(({ cache }) => cache.stats().bytes <= CAP), ARRIVES_WITHIN_MS);
    await settledObjects(s3, CAP);
    const left = await s3.objects();
    // 1,800 bytes down to 900: exactly the three least recently used, not one more.
    expect(left.length).toBe(3);
    expect(new Set(removed).size).toBe(removed.length);
    expect(removed.length).toBe(3);
    // A run logs once it has given its lease back.
    const runs = () => caches.flatMap(({ logs }) => logs.filter((l) => l.msg === 'cache evicted'));
    await until(() => runs().length > 0, ARRIVES_WITHIN_MS);
    // Each run under a lease of its own.
    expect(runs().every((run) => typeof run.lease === 'number')).toBe(true);
  }, 120_000);

  it('commits racing on three replicas: the fleet ends just under the cap, no blob removed twice', async () => {
    const { s3, caches, removed } = await fleet('race', 3);
    const blobs = Array.from({ length: 12 }, () => blob(SIZE));
    await Promise.all(caches.map(async ({ cache }, i) => {
      for (const x of blobs.slice(i * 4, i * 4 + 4)) await cache.put(x.digest, x.bytes, meta());
    }));
    await until(() => caches.every(({ cache }) => cache.stats().entries * SIZE <= CAP), ARRIVES_WITHIN_MS);
    await settledObjects(s3, CAP);
    const objects = await s3.objects();
    await until(() => removed.length === 12 - objects.length, ARRIVES_WITHIN_MS);
    expect(objects.length * SIZE).toBeLessThanOrEqual(CAP);
    // Not over-evicted: the fleet keeps as many as fit.
    expect(objects.length).toBe(Math.floor(CAP / SIZE));
    expect(new Set(removed).size).toBe(removed.length);
  }, 120_000);

  it('a replica that finds an object gone (reading or verifying) only forgets it, and leaves the row and the other replicas alone', async () => {
    const { s3, caches, index, removed } = await fleet('gone', 2);
    const [a, b] = [caches[0]!.cache, caches[1]!.cache];
    const [read, verified] = [blob(SIZE), blob(SIZE)];
    for (const x of [read, verified]) await a.put(x.digest, x.bytes, meta());
    await until(() => b.stat(read.digest) !== undefined && b.stat(verified.digest) !== undefined, ARRIVES_WITHIN_MS);
    // The objects go behind B's back, as when another replica's eviction has not been heard of yet.
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    onTestFinished(() => client.destroy());
    for (const x of [read, verified]) await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `${name}-gone/blobs/sha256/${digestHex(x.digest)}` }));
    await expect(collect(b.read(read.digest)!.stream)).rejects.toThrow();
    await until(() => b.stat(read.digest) === undefined, ARRIVES_WITHIN_MS);
    expect(await b.verify()).toEqual({ checked: 1, removed: [] });
    expect(b.stat(verified.digest)).toBeUndefined();
    expect(caches[1]!.logs.filter((l) => l.msg === 'cache: a blob is gone from the shared store; forgetting it').length).toBe(2);
    await b.setRecord('probe', 1);
    await until(() => a.getRecord('probe') !== undefined, ARRIVES_WITHIN_MS);
    expect(removed).toEqual([]);
    expect(a.stats().entries).toBe(2);
    const rows = (await index.load()).entries.map((entry) => entry.digest);
    expect(rows).toEqual(expect.arrayContaining([read.digest, verified.digest]));
  }, 60_000);
});
