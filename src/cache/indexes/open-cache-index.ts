import type { FastifyBaseLogger } from 'fastify';
import type { CacheIndexConfig } from '../../config/shared-stores.js';
import type { CacheIndex } from '../cache-index.js';
import type { KeyvIndexOptions } from './keyv-index.js';
import { openPostgresIndex } from './postgres.js';
import { openRedisIndex } from './redis.js';
import { openSqliteIndex } from './sqlite.js';

export interface OpenCacheIndexOptions extends KeyvIndexOptions {
  /** The SQLite file of the default index (e.g. `<data-dir>/cache/index.sqlite`). */
  sqliteFile: string;
  logger: FastifyBaseLogger;
}

/**
 * Opens the index CACHE_INDEX names. A backend that cannot be reached rejects with
 * `CacheIndexUnavailableError`, whose message names the backend and host (never a password).
 */
export function openCacheIndex(config: CacheIndexConfig, options: OpenCacheIndexOptions): Promise<CacheIndex> {
  const { sqliteFile, logger, ...rest } = options;
  switch (config.kind) {
    case 'sqlite':
      return openSqliteIndex(sqliteFile, logger, rest);
    case 'redis':
      return openRedisIndex(config.url, logger, rest);
    case 'postgres':
      return openPostgresIndex(config.url, logger, rest);
  }
}
