import { describe, expect, it } from 'vitest';
import { AccessRecords, mergeMemberRecords, repositoryKey } from '../../../src/access/access-records.js';
import { blob, handSource, meta, openCache } from '../cache/cache-fixture.js';

const REPO = repositoryKey('https://registry.test', 'team/app');
const OTHER = repositoryKey('https://registry.test', 'team/other');

describe('AccessRecords', () => {
  it('keeps the repositories a digest was seen in, most recent first, across a restart', async () => {
    const { cache, dir } = await openCache();
    const records = new AccessRecords(cache);
    const { digest } = blob(10);
    await records.addMember(digest, REPO);
    await records.addMember(digest, OTHER);
    expect(records.isMember(digest, REPO) && records.isMember(digest, OTHER)).toBe(true);
    await records.setReach('anonymous', REPO, true, 1_000);
    await cache.close();
    const again = new AccessRecords((await openCache({ dir })).cache);
    expect(again.isMember(digest, REPO)).toBe(true);
    expect(again.reach('anonymous', REPO)).toEqual({ readable: true, at: 1_000 });
    expect(again.reach('layover', REPO)).toBeUndefined();
  });

  it('forgets where evicted digests were seen, and only those', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const kept = blob(64);
    const evicted = blob(64);
    await cache.put(kept.digest, kept.bytes, meta({ size: kept.bytes.length }));
    await records.addMember(kept.digest, REPO);
    await records.addMember(evicted.digest, REPO);
    await records.setReach('anonymous', REPO, true, Date.now());
    expect(await records.forgetEvicted()).toBe(1);
    expect(records.isMember(kept.digest, REPO)).toBe(true);
    expect(records.isMember(evicted.digest, REPO)).toBe(false);
    expect(records.reach('anonymous', REPO)?.readable).toBe(true);
  });

  it('forgets evicted digests after the turn it is asked in, all of them across several batches', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const kept = blob(64);
    await cache.put(kept.digest, kept.bytes, meta({ size: kept.bytes.length }));
    await records.addMember(kept.digest, REPO);
    // More than two batches' worth of member records whose blobs the cache does not hold.
    const evicted = Array.from({ length: 4_500 }, () => blob(8).digest);
    await Promise.all(evicted.map((digest) => records.addMember(digest, REPO)));

    const forgetting = records.forgetEvicted();
    // The start that asked goes on first: nothing is looked at in its turn.
    expect(evicted.every((digest) => records.isMember(digest, REPO))).toBe(true);
    expect(await forgetting).toBe(4_500);
    expect(evicted.some((digest) => records.isMember(digest, REPO))).toBe(false);
    expect(records.isMember(kept.digest, REPO)).toBe(true);
  });

  it('knows which upstreams hold a digest: those that gave or showed its bytes, the one its cached copy or fill comes from, and no other', async () => {
    const { cache } = await openCache();
    const records = new AccessRecords(cache);
    const { digest, bytes } = blob(64);
    const registry = { registry: 'registry.test', origin: 'https://registry.test' };
    const liar = { registry: 'liar.test', origin: 'https://liar.test' };
    expect(records.heldBy(digest, registry)).toBe(false);
    // A membership is recorded when a download begins, before anything is verified: no proof of holding.
    await records.addMember(digest, repositoryKey(liar.origin, 'team/app'));
    expect(records.heldBy(digest, liar)).toBe(false);
    // registry.test fills it: its clients join the fill at once; the liar's do not.
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length, source: 'registry.test/team/app' }));
    await records.addMember(digest, REPO);
    expect(records.heldBy(digest, registry)).toBe(true);
    expect(records.heldBy(digest, liar)).toBe(false);
    source.end(bytes);
    await fill.done;
    // The committed copy's source holds it (a cache from before holders too).
    expect(records.heldBy(digest, registry)).toBe(true);
    expect(records.heldBy(digest, liar)).toBe(false);
    // Holders and repositories live in one record; adding either keeps the other.
    await records.addHolder(digest, 'https://mirror.test');
    await records.addMember(digest, OTHER);
    expect(records.isMember(digest, REPO) && records.isMember(digest, OTHER)).toBe(true);
    expect(records.heldBy(digest, { registry: 'mirror.test', origin: 'https://mirror.test' })).toBe(true);
    // Docker Hub's names are one registry.
    const hub = blob(32);
    await cache.put(hub.digest, hub.bytes, meta({ size: hub.bytes.length, source: 'registry-1.docker.io/library/alpine' }));
    expect(records.heldBy(hub.digest, { registry: 'docker.io', origin: 'https://registry-1.docker.io' })).toBe(true);
  });
});

describe('mergeMemberRecords (another replica\'s record of a digest arrives)', () => {
  it('keeps what both replicas added, holders first, and gives back the arrival once it holds everything', () => {
    const local = ['@a.test', 'a.test/one', 'a.test/seed'];
    const remote = ['@b.test', 'b.test/two', 'a.test/seed'];
    const merged = mergeMemberRecords(local, remote);
    expect(merged).toEqual(['@b.test', '@a.test', 'b.test/two', 'a.test/seed', 'a.test/one']);
    // The other replica, holding `remote`, gets `merged` back: nothing for it to add, so no write back.
    expect(mergeMemberRecords(remote, merged)).toBe(merged);
    expect(mergeMemberRecords(local, merged)).toBe(merged);
  });

  it('gives back the arrival when its bounds leave no room for this replica\'s entries (no write back and forth)', () => {
    const full = Array.from({ length: 64 }, (_, i) => `r.test/repo${i}`);
    const arrived = ['@r.test', ...full];
    expect(mergeMemberRecords(['r.test/other'], arrived)).toEqual(arrived);
    const holders = Array.from({ length: 16 }, (_, i) => `@h${i}.test`);
    expect(mergeMemberRecords(['@other.test'], holders)).toEqual(holders);
  });
});
