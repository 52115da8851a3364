/**
 * Issue 11, "index store stopped and started again, object storage stopped and started again:
 * behaviour as documented, no restart of Layover needed", under three live replicas (./fleet.ts) for
 * both shared indexes, as README documents it:
 * - index down ("A shared cache index"): replicas keep serving from memory (hits stay hits, no upstream
 *   GET), a miss is fetched, served and committed to the bucket, its index write kept; when the index
 *   is back the write is replayed, so the blob is in the index (read from Redis or Postgres itself);
 * - storage down ("Blob storage in a bucket"): hits are passed through from the upstream (or answered
 *   from memory: small blobs read before), misses are served uncached; when it is back, hits come from
 *   the bucket again and misses are cached again.
 * Every pull is a whole skopeo pull (digests checked) and must succeed, during each outage and after;
 * the same three processes run from the first pull to the last.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { SMALL_BLOB_BYTES } from '../../../src/proxy/small-blob.js';
import { type Fleet, type IndexKind, startFleet } from './fleet.js';

/** A hang guard for a replay with a growing delay (1 s doubling) and reconnects on a loaded machine, not a timing. */
const REPLAYED_WITHIN_MS = 90_000;

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe.each<IndexKind>(['redis', 'postgres'])('three replicas over a shared %s index and one bucket', (index) => {
  let fleet: Fleet;
  let pids: Array<number | undefined>;
  beforeAll(async () => {
    fleet = await startFleet({ index, images: ['oci', 'docker', 'multi', 'large'] });
    pids = fleet.names.map((name) => fleet.replica(name).child.pid);
  }, 240_000);
  afterAll(() => fleet?.close());

  const sameProcesses = (): void => {
    expect(fleet.names.map((name) => fleet.running(name) && fleet.replica(name).child.pid)).toEqual(pids);
  };

  it('index down: hits served from memory, a miss fetched, served and committed, its row written when the index is back', async () => {
    const oci = fleet.image('oci');
    const large = fleet.image('large');
    const ociDigests = oci.blobs.map((b) => b.digest);
    // Nothing of this image is cached or known to any replica before the outage.
    const fresh = large.blobs.map((b) => b.digest);
    expect(fresh.filter((digest) => ociDigests.includes(digest))).toEqual([]);
    await fleet.pull('r1', oci);
    await fleet.waitForCommits('r1', ociDigests);
    await fleet.waitUntilHit('r2', oci);

    // A failed step must not leave the next test without its index.
    onTestFinished(() => fleet.index.start());
    await fleet.index.stop();
    await fleet.clearUpstreamRequests();
    await fleet.pull('r2', oci);
    expect(await fleet.upstreamBlobGets()).toBe(0);
    await fleet.pull('r3', large);
    expect(await fleet.upstreamBlobGets()).toBe(fresh.length);
    await fleet.waitForCommits('r3', fresh);
    await fleet.replica('r3').waitForLog((l) => l.msg === 'cache index: write failed; kept to replay when the backend answers again');
    await expect(fleet.index.indexedDigests()).rejects.toThrow();
    // r3 serves what it committed during the outage from the bucket.
    await fleet.clearUpstreamRequests();
    await fleet.pull('r3', large);
    expect(await fleet.upstreamBlobGets()).toBe(0);

    await fleet.index.start();
    await until(async () => {
      const indexed = await fleet.index.indexedDigests().catch((): string[] => []);
      return fresh.every((digest) => indexed.includes(digest));
    }, REPLAYED_WITHIN_MS, `the rows of ${fresh.join(', ')} in the ${index} index`);
    await fleet.replica('r3').waitForLog((l) => l.msg === 'cache index: the backend answers again; failed writes replayed', REPLAYED_WITHIN_MS);
    // And the fleet goes on: a pull through another replica after the outage succeeds.
    await fleet.pull('r2', large);
    sameProcesses();
  }, 300_000);

  it('storage down: hits passed through, misses served uncached; cached again once it is back', async () => {
    const oci = fleet.image('oci');
    const multi = fleet.image('multi');
    const ociDigests = oci.blobs.map((b) => b.digest);
    const multiDigests = multi.blobs.map((b) => b.digest);
    // The multi-platform image shares its base layer with the others: the rest is new to the cache.
    const cachedBefore = new Set([...ociDigests, ...fleet.image('docker').blobs.map((b) => b.digest)]);
    const fresh = multiDigests.filter((digest) => !cachedBefore.has(digest));
    expect(fresh.length).toBeGreaterThan(0);
    await fleet.pull('r1', oci);
    await fleet.waitUntilHit('r2', oci);

    onTestFinished(() => fleet.storage.start());
    await fleet.storage.stop();
    await fleet.clearUpstreamRequests();
    const seen = fleet.replica('r2').logs().length;
    await fleet.pull('r2', oci);
    // A blob of at most SMALL_BLOB_BYTES that r2 has read before is answered from its memory (verified
    // bytes, its index row still there): a hit without the bucket. Every other one is passed through.
    const answers = fleet.replica('r2').logs().slice(seen).filter((l) => l.msg === 'request' && l.method === 'GET' && ociDigests.includes(String(l.digest)));
    expect(answers).toHaveLength(ociDigests.length);
    const passed = answers.filter((l) => l.cache === 'pass');
    for (const answer of answers.filter((l) => l.cache !== 'pass')) {
      expect(answer.cache).toBe('hit');
      expect(oci.blobs.find((b) => b.digest === answer.digest)!.size).toBeLessThanOrEqual(SMALL_BLOB_BYTES);
    }
    expect(await fleet.upstreamBlobGets()).toBe(passed.length);
    await fleet.clearUpstreamRequests();
    await fleet.pull('r3', multi, { all: true });
    expect(await fleet.upstreamBlobGets()).toBe(multiDigests.length);
    for (const digest of fresh) await fleet.replica('r3').waitForLog((l) => l.msg === 'cache fill dropped' && l.digest === digest, 30_000);
    expect(fleet.storage.objects().filter((key) => fresh.some((digest) => key.endsWith(digest.slice(7))))).toEqual([]);

    await fleet.storage.start();
    await fleet.clearUpstreamRequests();
    // What was cached before the outage is a hit again: served from the bucket.
    await fleet.pull('r2', oci);
    expect(await fleet.upstreamBlobGets()).toBe(0);
    // What was missed during it is cached now, once, and then a hit on another replica.
    await fleet.pull('r3', multi, { all: true });
    expect(await fleet.upstreamBlobGets()).toBe(fresh.length);
    await fleet.waitForCommits('r3', fresh);
    await fleet.waitUntilHit('r1', multi);
    await fleet.clearUpstreamRequests();
    await fleet.pull('r1', multi, { all: true });
    expect(await fleet.upstreamBlobGets()).toBe(0);
    sameProcesses();
  }, 300_000);
});
