import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
 * data dir is locked by a running Layover, so on a cache of its own these run while it is stopped. On a
 * shared cache (CACHE_INDEX redis:// or postgres://, BLOB_STORE s3://) they run beside live replicas:
 * the data dir then holds nothing of the cache, so they spool in a temporary directory of their own;
 * `prune` evicts for the fleet under the eviction lease, and what `prune` and `verify` remove is
 * announced to the replicas through the index's change feed, as their own removals are.
 */
export async function cacheCommand(config: LayoverConfig, subcommand: CacheSubcommand, args: readonly string[], options: { maxSize: string | undefined }): Promise<string> {
  const maxSizeFlag = options.maxSize;
  if (args.length > 0) throw new ConfigError(`cache ${subcommand}: takes no arguments, got ${JSON.stringify(args.join(' '))}`);
  const maxSize = maxSizeFlag === undefined ? undefined : parseSize(maxSizeFlag);
  if (maxSize === null) throw new ConfigError(`--max-size: expected a size such as 32g, got ${JSON.stringify(maxSizeFlag)}`);
  const logger = pino({ level: 'warn' }, pino.destination(2)) as FastifyBaseLogger;
  const shared = config.cacheIndex.kind !== 'sqlite';
  const spool = shared ? await mkdtemp(join(tmpdir(), 'layover-cache-command-')) : undefined;
  try {
    return await runOn(spool ?? config.dataDir, config, subcommand, maxSize, logger);
  } finally {
    if (spool) await rm(spool, { recursive: true, force: true });
  }
}

async function runOn(dataDir: string, config: LayoverConfig, subcommand: CacheSubcommand, maxSize: number | undefined, logger: FastifyBaseLogger): Promise<string> {
  // Opening evicts down to maxSize: open without a cap so that only `prune` removes anything (and reports it).
  const cache = await BlobCache.open({
    dir: join(dataDir, 'cache'),
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
