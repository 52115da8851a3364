/**
 * Two replicas of the blob cache (their own data directories) over one shared index (a real
 * redis-server, a real Postgres, each started by the harness) and one bucket (s3rver, the only S3
 * server installable here): what one commits, the other serves after it opens, records included;
 * and a shared index over per-replica files is refused at start (a replica's reconcile would drop
 * the rows of blobs only another replica holds).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/config-error.js';
import { loadConfig } from '../../../src/config/load-config.js';
import { parseCacheIndex, type CacheIndexConfig } from '../../../src/config/shared-stores.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { blob, collect, meta, openCache } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';

let redis: RedisServer;
let postgres: PostgresServer;
beforeAll(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
}, 60_000);
afterAll(async () => {
  await Promise.allSettled([redis?.close(), postgres?.close()]);
});

const indexOf = (url: string): CacheIndexConfig => parseCacheIndex(url) as CacheIndexConfig;

describe.each([
  ['redis', () => redis.url],
  ['postgres', () => postgres.url],
])('replicas over a shared %s index and one bucket', (_name, url) => {
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

it('refuses a shared index over blobs in per-replica files', () => {
  expect(() => loadConfig({ env: { CACHE_INDEX: 'redis://127.0.0.1:6379' }, machine: { advertise: () => ['192.0.2.1'], upstreamDns: () => [] } })).toThrow(ConfigError);
  expect(() => loadConfig({ env: { CACHE_INDEX: 'redis://127.0.0.1:6379' }, machine: { advertise: () => ['192.0.2.1'], upstreamDns: () => [] } })).toThrow(
    'CACHE_INDEX: a shared index describes shared blobs: it needs BLOB_STORE=s3://…',
  );
});
