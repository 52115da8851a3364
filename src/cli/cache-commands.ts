import { join } from 'node:path';
import { stringify } from 'yaml';
import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { BlobCache } from '../cache/blob-cache.js';
import { ConfigError } from '../config/config-error.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { parseSize } from '../config/units.js';

export const CACHE_SUBCOMMANDS = ['stats', 'ls', 'prune', 'verify'] as const;
export type CacheSubcommand = (typeof CACHE_SUBCOMMANDS)[number];

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/**
 * `layover cache stats|ls|prune|verify` on the data dir and the configured blob store (BLOB_STORE). The
 * data dir is locked by a running Layover, so these run while it is stopped, or, with a bucket, from a
 * data dir of their own (LAYOVER_DATA_DIR) with the same BLOB_STORE and CACHE_INDEX.
 */
export async function cacheCommand(config: LayoverConfig, subcommand: CacheSubcommand, maxSizeFlag: string | undefined): Promise<string> {
  const maxSize = maxSizeFlag === undefined ? undefined : parseSize(maxSizeFlag);
  if (maxSize === null) throw new ConfigError(`--max-size: expected a size such as 32g, got ${JSON.stringify(maxSizeFlag)}`);
  const logger = pino({ level: 'warn' }, pino.destination(2)) as FastifyBaseLogger;
  // Opening evicts down to maxSize: open without a cap so that only `prune` removes anything (and reports it).
  const cache = await BlobCache.open({
    dir: join(config.dataDir, 'cache'),
    maxSize: Number.MAX_SAFE_INTEGER,
    logger,
    stallTimeoutMs: config.timeouts.proxyReadMs,
    blobStore: config.blobStore,
    cacheIndex: config.cacheIndex,
  });
  try {
    switch (subcommand) {
      case 'stats': {
        const stats = { ...cache.stats(), maxSize: config.cacheMaxSize };
        return stringify({ ...stats, used: mib(stats.bytes), max: mib(stats.maxSize) });
      }
      case 'ls':
        return cache
          .list()
          .map((e) => [e.digest, String(e.size), e.kind, new Date(e.lastAccess).toISOString(), e.source].join('\t'))
          .map((line) => `${line}\n`)
          .join('');
      case 'prune': {
        const result = await cache.prune(maxSize ?? config.cacheMaxSize);
        return stringify({ ...result, freed: mib(result.freedBytes) });
      }
      case 'verify':
        return stringify(await cache.verify());
    }
  } finally {
    await cache.close();
  }
}
