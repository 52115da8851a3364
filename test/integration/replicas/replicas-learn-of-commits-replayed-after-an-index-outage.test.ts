/**
 * A blob a replica commits while the shared index is down is announced to nobody (the change feed is
 * down too) and its row is written only when the index's replay gets through (src/cache/indexes/
 * keyv-index.ts, a growing delay). The other replicas re-read the index when their feed reconnects;
 * if that re-read comes before the replay, they must still learn of the blob when it lands, not only
 * at the next periodic re-read 5 minutes later: until then every pull of it through them went to the
 * upstream again. Two replicas (./fleet.ts) over each shared index (a real redis-server, a real
 * Postgres) and s3rver; the outage lasts a few replay delays, so the feed is back before the replay.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type Fleet, type IndexKind, startFleet } from './fleet.js';

/** Lasts past several replay attempts (1 s, 2 s, 4 s, …), so the replay lands after the feed is back. */
const OUTAGE_MS = 8_000;
/** A hang guard, well below the 5-minute periodic re-read that would otherwise bring the blob. */
const LEARNED_WITHIN_MS = 60_000;

describe.each<IndexKind>(['redis', 'postgres'])('two replicas over a shared %s index', (index) => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet({ index, replicas: 2, images: ['large'] });
  }, 240_000);
  afterAll(() => fleet?.close());

  it('a blob committed during an index outage becomes a hit on the other replica once the index is back', async () => {
    const large = fleet.image('large');
    const digests = large.blobs.map((b) => b.digest);
    onTestFinished(() => fleet.index.start());
    await fleet.index.stop();
    await fleet.pull('r2', large);
    await fleet.waitForCommits('r2', digests);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await fleet.index.start();
    await fleet.replica('r2').waitForLog((l) => l.msg === 'cache index: the backend answers again; failed writes replayed', LEARNED_WITHIN_MS);
    expect(await fleet.index.indexedDigests()).toEqual(expect.arrayContaining(digests));

    await fleet.waitUntilHit('r1', large, LEARNED_WITHIN_MS);
    await fleet.clearUpstreamRequests();
    await fleet.pull('r1', large);
    expect(await fleet.upstreamBlobGets()).toBe(0);
  }, 240_000);
});
