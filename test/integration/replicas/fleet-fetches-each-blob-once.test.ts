/**
 * Issue 11, "3 replicas × 4 concurrent clients on a new image: one upstream GET per blob, every client
 * gets the right bytes", end to end: three `layover serve` processes (./fleet.ts) in a network
 * namespace of their own over one bucket (s3rver) and one index (a real redis-server, a real
 * Postgres), the distribution registry as the upstream, and twelve skopeo pulls at once, four through
 * each replica, of an image none of them holds (a 30 MiB layer, so that downloads overlap). Skopeo
 * checks every blob against its digest; the files are hashed again here.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fleet, type IndexKind, startFleet } from './fleet.js';

const CLIENTS_PER_REPLICA = 4;

describe.each<IndexKind>(['redis', 'postgres'])('three replicas over a shared %s index', (index) => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet({ index, images: ['large', 'oci'] });
  }, 240_000);
  afterAll(() => fleet?.close());

  it(`${CLIENTS_PER_REPLICA} concurrent skopeo pulls through each: one upstream GET per blob, the right bytes for all`, async () => {
    const image = fleet.image('large');
    const digests = image.blobs.map((b) => b.digest).sort();
    await fleet.clearUpstreamRequests();
    const pulls = await Promise.all(fleet.names.flatMap((name) => Array.from({ length: CLIENTS_PER_REPLICA }, () => fleet.pull(name, image, { timeoutMs: 180_000 }))));
    for (const pull of pulls) {
      const files = readdirSync(pull.dir).filter((file) => /^[0-9a-f]{64}$/.test(file));
      expect(files.map((file) => `sha256:${file}`).sort()).toEqual(digests);
      for (const file of files) expect(`sha256:${createHash('sha256').update(readFileSync(join(pull.dir, file))).digest('hex')}`).toBe(`sha256:${file}`);
    }
    expect(await fleet.upstreamBlobGets(digests)).toBe(digests.length);
    // The replicas that did not fetch a blob followed the one that did, or found it committed.
    const followed = fleet.names.flatMap((name) => fleet.replica(name).logs()).filter((l) => l.msg === 'request' && typeof l.peer === 'string' && l.peer !== 'served');
    const committed = fleet.names.flatMap((name) => fleet.replica(name).logs()).filter((l) => l.msg === 'cache fill committed' && digests.includes(String(l.digest)));
    expect(committed).toHaveLength(digests.length);
    console.info(`fleet fills (${index}): ${pulls.length} pulls, ${digests.length} blobs, ${followed.length} answers followed another replica's download`);
  }, 300_000);
});
