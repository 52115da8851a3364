import type { FastifyBaseLogger } from 'fastify';
import type { CacheIndexConfig } from '../../config/shared-stores.js';
import type { CacheIndex } from '../cache-index.js';
import type { KeyvIndexOptions } from './keyv-index.js';
import { openSqliteIndex } from './sqlite.js';

export interface OpenCacheIndexOptions extends KeyvIndexOptions {
  /** The SQLite file of the default index (e.g. `<data-dir>/cache/index.sqlite`). */
  sqliteFile: string;
  logger: FastifyBaseLogger;
}

/**
 * Opens the index CACHE_INDEX names. The Redis and Postgres clients are loaded only for their
 * kind: a Layover on its own SQLite index does not pay their start-up time and memory (about 8 MB). A backend that cannot be reached rejects with
 * `CacheIndexUnavailableError`, whose message names the backend and host (never a password).
 */
export async function openCacheIndex(config: CacheIndexConfig, options: OpenCacheIndexOptions): Promise<CacheIndex> {
  const { sqliteFile, logger, ...rest } = options;
  switch (config.kind) {
    case 'sqlite':
      return openSqliteIndex(sqliteFile, logger, rest);
    case 'redis': {
      const { openRedisIndex } = await import('./redis.js');
      return openRedisIndex(config.url, logger, rest);
    }
    case 'postgres': {
      const { openPostgresIndex } = await import('./postgres.js');
      return openPostgresIndex(config.url, logger, rest);
    }
  }
}
