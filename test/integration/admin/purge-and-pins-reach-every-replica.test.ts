/**
 * Two replicas of a shared cache (a real redis-server or Postgres as the index, s3rver as the bucket):
 * a pin made on one is a record the other honours when it evicts for the fleet, and what a purge on
 * one removes, the other forgets (announced through the index's change feed, as eviction's removals are).
 */
import { describe, expect, it } from 'vitest';
import { scopeFromText } from '../../../src/cache/cache-scope.js';
import { blob, openCache, until } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { digestsOf, pullImage } from '../../unit/admin/image-fixture.js';
import { indexConfigOf, sharedIndexServers } from '../cache/shared-index-servers.js';

const servers = sharedIndexServers();
/** A hang guard for messages between replicas on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;

describe.each(servers)('pins and purges on a shared %s index and bucket', (name, server) => {
  it('a pin made on one replica keeps the image through the other\'s eviction; a purge on one empties both', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const shared = { blobStore: s3.config(`${name}-pins`), cacheIndex: indexConfigOf(server()) };
    const a = (await openCache(shared)).cache;
    const b = (await openCache(shared)).cache;
    const kept = await pullImage(a, 'kept', 'v1', [blob(1000)]);
    const loose = await pullImage(a, 'loose', 'v1', [blob(1000)]);
    await until(() => digestsOf(loose).every((digest) => b.stat(digest) !== undefined), ARRIVES_WITHIN_MS);

    await b.pins.pin(scopeFromText('registry.test/kept:v1'));
    await until(() => a.pins.list().length === 1, ARRIVES_WITHIN_MS);
    expect(await a.prune(0)).toMatchObject({ removed: digestsOf(loose).length });
    for (const digest of digestsOf(kept)) expect(a.stat(digest)).toBeDefined();
    await until(() => digestsOf(loose).every((digest) => b.stat(digest) === undefined), ARRIVES_WITHIN_MS);

    await b.pins.unpin(scopeFromText('registry.test/kept:v1'));
    const purged = await b.purge(scopeFromText('registry.test/kept'), { force: false });
    expect(new Set(purged.removedDigests)).toEqual(new Set(digestsOf(kept)));
    await until(() => digestsOf(kept).every((digest) => a.stat(digest) === undefined), ARRIVES_WITHIN_MS);
    await until(() => a.recordKeys('tag:registry.test/kept:').length === 0, ARRIVES_WITHIN_MS);
    expect(await s3.objects()).toEqual([]);
  }, 90_000);
});
