/**
 * Issue 11, "skopeo pulls through replica A, then through replica B: 0 upstream blob GETs the second
 * time", for both shared indexes: three replicas (./fleet.ts) over one bucket (s3rver) and one index
 * (a real redis-server, a real Postgres) in a network namespace of their own. A pull through r1 fills
 * the cache; r2 hears of r1's commits over the index's change feed, and a pull through r2 (and one
 * through r3) is served from the bucket with no blob GET reaching the upstream registry. Both pulls are
 * whole images checked by skopeo against their digests; the bytes are also compared file by file.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fleet, type IndexKind, startFleet } from './fleet.js';

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The blobs skopeo wrote into a dir: destination (one file per blob, named by its hex digest). */
function pulledBlobs(dir: string): string[] {
  return readdirSync(dir)
    .filter((file) => /^[0-9a-f]{64}$/.test(file))
    .map((file) => {
      const digest = sha256(readFileSync(join(dir, file)));
      if (digest !== `sha256:${file}`) throw new Error(`${dir}/${file}: the bytes hash to ${digest}`);
      return digest;
    })
    .sort();
}

describe.each<IndexKind>(['redis', 'postgres'])('replicas over a shared %s index and one bucket', (index) => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet({ index, images: ['oci', 'docker'] });
  }, 240_000);
  afterAll(() => fleet?.close());

  it('a pull through r1, then through r2 and r3: 0 upstream blob GETs the second and third time', async () => {
    const image = fleet.image('oci');
    const digests = image.blobs.map((b) => b.digest);
    const first = await fleet.pull('r1', image);
    expect(pulledBlobs(first.dir)).toEqual([...digests].sort());
    expect(await fleet.upstreamBlobGets(digests)).toBe(digests.length);
    await fleet.waitForCommits('r1', digests);
    expect(await fleet.index.indexedDigests()).toEqual(expect.arrayContaining(digests));

    for (const other of ['r2', 'r3']) await fleet.waitUntilHit(other, image);
    await fleet.clearUpstreamRequests();
    const second = await fleet.pull('r2', image);
    const third = await fleet.pull('r3', image);
    expect(await fleet.upstreamBlobGets()).toBe(0);
    expect(pulledBlobs(second.dir)).toEqual([...digests].sort());
    expect(pulledBlobs(third.dir)).toEqual([...digests].sort());
    // Served from the bucket by replicas that never filled them.
    for (const other of ['r2', 'r3']) {
      const served = fleet.replica(other).logs().filter((l) => l.msg === 'request' && l.method === 'GET' && digests.includes(String(l.digest)));
      expect(served.map((l) => l.cache)).toEqual(digests.map(() => 'hit'));
      expect(fleet.replica(other).logs().filter((l) => l.msg === 'cache fill committed')).toEqual([]);
    }
  }, 180_000);

  it('a blob shared by two images is fetched once for the fleet: the other image through another replica GETs only its own blobs', async () => {
    const oci = fleet.image('oci');
    const docker = fleet.image('docker');
    const shared = docker.blobs.filter((b) => oci.blobs.some((o) => o.digest === b.digest)).map((b) => b.digest);
    expect(shared.length).toBeGreaterThan(0);
    // The oci image is in the cache already (the test before, or pulled now through r1).
    await fleet.pull('r1', oci);
    await fleet.waitUntilHit('r3', oci);
    await fleet.clearUpstreamRequests();
    await fleet.pull('r3', docker);
    expect(await fleet.upstreamBlobGets(shared)).toBe(0);
    expect(await fleet.upstreamBlobGets()).toBe(docker.blobs.length - shared.length);
  }, 180_000);
});
