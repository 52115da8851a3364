/**
 * Two replicas of the blob cache (their own data directories) over one shared index (a real
 * redis-server, a real Postgres, each started by the harness) and one bucket (s3rver, the only S3
 * server installable here): what one commits, the other serves after it opens, records included;
 * while both run, what one commits becomes a hit on the other, what one evicts the other forgets,
 * records follow, and a replica whose change feed was cut catches up by re-reading the index;
 * and a shared index over per-replica files is refused at start (a replica's reconcile would drop
 * the rows of blobs only another replica holds).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { ConfigError } from '../../../src/config/config-error.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { parseCacheIndex, type CacheIndexConfig } from '../../../src/config/shared-stores.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, collect, meta, openCache, until } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { sharedIndexServers } from './shared-index-servers.js';

const servers = sharedIndexServers();

const indexOf = (url: string): CacheIndexConfig => parseCacheIndex(url) as CacheIndexConfig;

describe.each(servers)('replicas over a shared %s index and one bucket', (_name, server) => {
  const url = () => server().url;
  it('a blob and a record one replica committed are served by the other', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const shared = { blobStore: s3.config(`replicas-${_name}`), cacheIndex: indexOf(url()) };
    const a = await openCache(shared);
    const { bytes, digest } = blob(300_000);
    await a.cache.put(digest, bytes, meta());
    await a.cache.setRecord(`tag:quay.io/org/app:${_name}`, { digest, fetchedAt: 1 });
    await a.cache.close();

    const b = await openCache(shared);
    expect(b.dir).not.toBe(a.dir);
    expect(b.cache.stat(digest)).toMatchObject({ digest, size: bytes.length });
    expect((await collect(b.cache.read(digest)!.stream)).equals(bytes)).toBe(true);
    expect(b.cache.getRecord(`tag:quay.io/org/app:${_name}`)).toEqual({ digest, fetchedAt: 1 });
  }, 30_000);
});

/** A hang guard for messages between processes on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;

describe.each(servers)('replicas running side by side over a shared %s index and one bucket', (name, server) => {
  const twoReplicas = async (test: string) => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const cacheIndex = parseCacheIndex(server().url) as CacheIndexConfig;
    const shared = { blobStore: s3.config(`${name}-${test}`), cacheIndex };
    const a = await openCache(shared);
    const b = await openCache(shared);
    return { a: a.cache, b: b.cache, s3, shared };
  };

  it('a blob one replica commits becomes a hit on the other, with no fill there', async () => {
    const { a, b } = await twoReplicas('commit');
    const { bytes, digest } = blob(200_000);
    expect(b.stat(digest)).toBeUndefined();
    await a.put(digest, bytes, meta());
    await until(() => b.stat(digest) !== undefined, ARRIVES_WITHIN_MS);
    expect(b.stat(digest)).toMatchObject({ digest, size: bytes.length, kind: 'blob' });
    expect((await collect(b.read(digest)!.stream)).equals(bytes)).toBe(true);
    expect(b.stats().activeFills).toBe(0);
  }, 60_000);

  it('a blob one replica evicts is forgotten by the other', async () => {
    const { a, b } = await twoReplicas('evict');
    const { bytes, digest } = blob(100_000);
    await a.put(digest, bytes, meta());
    await until(() => b.stat(digest) !== undefined, ARRIVES_WITHIN_MS);
    expect(await a.prune(0)).toMatchObject({ removed: 1 });
    await until(() => b.stat(digest) === undefined, ARRIVES_WITHIN_MS);
    expect(b.read(digest)).toBeUndefined();
  }, 60_000);

  it('a record one replica sets or deletes is seen by the other', async () => {
    const { a, b } = await twoReplicas('records');
    const key = `tag:quay.io/org/live:${name}`;
    await a.setRecord(key, { digest: 'sha256:x', fetchedAt: 1 });
    await until(() => b.getRecord(key) !== undefined, ARRIVES_WITHIN_MS);
    expect(b.getRecord(key)).toEqual({ digest: 'sha256:x', fetchedAt: 1 });
    await a.setRecord(key, { digest: 'sha256:y', fetchedAt: 2 });
    await until(() => (b.getRecord<{ fetchedAt: number }>(key)?.fetchedAt ?? 0) === 2, ARRIVES_WITHIN_MS);
    await a.deleteRecord(key);
    await until(() => b.getRecord(key) === undefined, ARRIVES_WITHIN_MS);
    // Its own messages come back to a replica too; they change nothing there.
    expect(a.getRecord(key)).toBeUndefined();
  }, 60_000);

  /** Two replicas merging access records (as the app sets them up), both holding a digest's record with one member, `seed`. */
  const mergingReplicas = async (test: string) => {
    const replicas = await twoReplicas(test);
    const { a, b } = replicas;
    for (const cache of [a, b]) AccessRecords.mergeAcrossReplicas(cache);
    const { digest } = blob(10);
    const key = `access:member:${digest}`;
    const seed = repositoryKey('https://quay.io', 'org/seed' as RepositoryName);
    await new AccessRecords(a).addMember(digest, seed);
    await until(() => b.getRecord(key) !== undefined, ARRIVES_WITHIN_MS);
    return { ...replicas, digest, key, seed };
  };

  it('a member one replica adds and a holder the other adds at the same moment are both kept', async () => {
    const { a, b, shared, digest, key, seed } = await mergingReplicas('merge');
    const app = repositoryKey('https://quay.io', 'org/app' as RepositoryName);
    // Each from what it has now, before it hears of the other: each writes the record whole.
    await Promise.all([new AccessRecords(a).addMember(digest, app), new AccessRecords(b).addHolder(digest, 'https://quay.io')]);
    const keepsBoth = (records: string[] | undefined): boolean => records?.includes(app) === true && records.includes('@quay.io') && records.includes(seed);
    // Before the merge one of the two was lost on both replicas and in the index.
    await until(() => keepsBoth(a.getRecord<string[]>(key)) && keepsBoth(b.getRecord<string[]>(key)), ARRIVES_WITHIN_MS);
    // The same entries; their order may differ between replicas (each puts what it adds last).
    const sorted = (records: string[] | undefined): string[] => [...(records ?? [])].sort();
    expect(sorted(a.getRecord<string[]>(key))).toEqual(sorted(b.getRecord<string[]>(key)));
    const third = await openCache(shared);
    expect(keepsBoth(third.cache.getRecord<string[]>(key))).toBe(true);
  }, 60_000);

  it('a re-read after a cut feed merges an access record too: what this replica added meanwhile is kept', async () => {
    const { a, b, shared, digest, key, seed } = await mergingReplicas('cut-merge');
    // B adds a holder (written, announced); then a change nobody announces lands in the index without it, as if
    // another replica's write and its message were lost while the feeds were down.
    await new AccessRecords(b).addHolder(digest, 'https://quay.io');
    await until(() => a.getRecord<string[]>(key)?.includes('@quay.io') === true, ARRIVES_WITHIN_MS);
    const index = await openCacheIndex(shared.cacheIndex, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    const other = repositoryKey('https://quay.io', 'org/other' as RepositoryName);
    await index.putRecord(key, [other, seed]);
    await index.settled();

    await server().stop();
    await server().start();
    // Both re-read: B (and A) keep the holder and take the silent member; the index gets both back.
    const keepsAll = (records: string[] | undefined): boolean => records?.includes('@quay.io') === true && records.includes(other) && records.includes(seed);
    await until(() => keepsAll(b.getRecord<string[]>(key)) && keepsAll(a.getRecord<string[]>(key)), ARRIVES_WITHIN_MS * 2);
    const deadline = Date.now() + ARRIVES_WITHIN_MS;
    while (!keepsAll((await index.readRecord(key)) as string[] | undefined)) {
      if (Date.now() > deadline) throw new Error('the index never got the merged record back');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }, 120_000);

  it('a replica whose change feed was cut catches up by re-reading the index', async () => {
    const { a, b, shared } = await twoReplicas('cut');
    const { bytes, digest } = blob(150_000);
    const key = `tag:quay.io/org/missed:${name}`;
    // Changes nobody announces, as if their messages were lost: the object through a replica with an
    // index of its own (SQLite), the row and a record straight into the shared index.
    const silent = await openCache({ blobStore: shared.blobStore });
    await silent.cache.put(digest, bytes, meta());
    const index = await openCacheIndex(shared.cacheIndex, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    await index.putEntry({ ...silent.cache.stat(digest)!, source: 'quay.io/org/missed' });
    await index.putRecord(key, { digest });
    await index.settled();
    // The feed itself works (a record A announces arrives) but B never heard of the silent changes.
    await a.setRecord('probe', 1);
    await until(() => b.getRecord('probe') !== undefined, ARRIVES_WITHIN_MS);
    expect(b.stat(digest)).toBeUndefined();
    expect(b.getRecord(key)).toBeUndefined();

    await server().stop();
    await server().start();
    await until(() => b.stat(digest) !== undefined && b.getRecord(key) !== undefined, ARRIVES_WITHIN_MS * 2);
    expect((await collect(b.read(digest)!.stream)).equals(bytes)).toBe(true);
    expect(b.getRecord(key)).toEqual({ digest });
    // And the feed works again after the cut.
    await a.setRecord('probe', 2);
    await until(() => b.getRecord('probe') === 2, ARRIVES_WITHIN_MS);
  }, 120_000);
});

it('refuses a shared index over blobs in per-replica files', () => {
  expect(() => loadConfig({ env: { CACHE_INDEX: 'redis://127.0.0.1:6379' }, machine: { advertise: () => ['192.0.2.1'], upstreamDns: () => [] } })).toThrow(ConfigError);
  expect(() => loadConfig({ env: { CACHE_INDEX: 'redis://127.0.0.1:6379' }, machine: { advertise: () => ['192.0.2.1'], upstreamDns: () => [] } })).toThrow(
    'CACHE_INDEX: a shared index describes shared blobs: it needs BLOB_STORE=s3://…',
  );
});
