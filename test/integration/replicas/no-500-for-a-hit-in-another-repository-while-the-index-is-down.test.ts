/**
 * While the shared index is down, replicas keep serving from memory (README, "A shared cache index").
 * A blob cached under one repository and asked for under another (a base layer shared by two images)
 * is a hit whose read access is settled by asking the upstream (src/access/read-access.ts); recording
 * that answer is an index write, which fails while the index is down. That failed write (kept and
 * replayed by the index anyway) must not fail the request: it used to end in a 500 ("unhandled
 * error"), so a node could not pull an image whose base layer another image had brought in.
 * Two replicas (./fleet.ts) over a real redis-server and s3rver, skopeo as the client.
 */
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { type Fleet, startFleet } from './fleet.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await startFleet({ index: 'redis', replicas: 2, images: ['oci', 'docker'] });
}, 240_000);
afterAll(() => fleet?.close());

it('a hit for a repository not seen before is served while the index is down', async () => {
  const oci = fleet.image('oci');
  const docker = fleet.image('docker');
  const shared = docker.blobs.map((b) => b.digest).filter((digest) => oci.blobs.some((b) => b.digest === digest));
  expect(shared.length).toBeGreaterThan(0);
  await fleet.pull('r1', oci);
  await fleet.waitForCommits('r1', oci.blobs.map((b) => b.digest));
  await fleet.waitUntilHit('r2', oci);

  onTestFinished(() => fleet.index.start());
  await fleet.index.stop();
  await fleet.clearUpstreamRequests();
  const pulled = await fleet.pull('r2', docker, { allowFailure: true });
  const errors = fleet.replica('r2').logs().filter((l) => l.msg === 'unhandled error' || (l.msg === 'request' && Number(l.status) >= 500));
  expect(errors.map((l) => JSON.stringify(l).slice(0, 400))).toEqual([]);
  expect(pulled.code, pulled.stderr).toBe(0);
  // The shared layer came from the bucket, not from the upstream.
  expect(await fleet.upstreamBlobGets(shared)).toBe(0);
}, 180_000);
