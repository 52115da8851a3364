import { afterAll, beforeAll, onTestFinished } from 'vitest';
import type { CacheIndex } from '../../../src/cache/cache-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { parseCacheIndex, type CacheIndexConfig } from '../../../src/config/shared-stores.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';

export type SharedIndexServer = RedisServer | PostgresServer;

/**
 * A real redis-server and a real Postgres for the tests of one file, started before them and closed
 * after: `describe.each` over the list runs a suite against each.
 */
export function sharedIndexServers(): Array<readonly ['redis' | 'postgres', () => SharedIndexServer]> {
  let redis: RedisServer;
  let postgres: PostgresServer;
  beforeAll(async () => {
    [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled([redis?.close(), postgres?.close()]);
  });
  return [
    ['redis', () => redis],
    ['postgres', () => postgres],
  ];
}

export function indexConfigOf(server: SharedIndexServer): CacheIndexConfig {
  return parseCacheIndex(server.url) as CacheIndexConfig;
}

/** The shared index as the test itself sees it (rows, leases, the feed), closed when the test ends. */
export async function openTestIndex(config: CacheIndexConfig): Promise<CacheIndex> {
  const index = await openCacheIndex(config, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
  onTestFinished(() => index.close());
  return index;
}
