/**
 * The shared cache index of a fleet (./fleet.ts): a real redis-server or Postgres inside the fleet's
 * sandbox, one interface for both, and a way to read which blobs the index holds straight from the
 * backend (redis-cli, psql), not through Layover.
 */
import type { Sandbox } from '../../bench/sandbox.js';
import { startSandboxPostgres } from '../../bench/sandbox-postgres.js';
import { startSandboxRedis } from '../../bench/sandbox-redis.js';

export type IndexKind = 'redis' | 'postgres';

export const REDIS_ADDRESS = '127.0.0.7';
export const POSTGRES_ADDRESS = '127.0.0.8';

export interface FleetIndex {
  readonly kind: IndexKind;
  /** CACHE_INDEX for the replicas (holds the password). */
  readonly url: string;
  readonly running: boolean;
  /** The digests of the blob rows the backend holds now. */
  indexedDigests(): Promise<string[]>;
  /** Down: Redis gets SIGTERM, Postgres a fast shutdown; every client connection is cut. */
  stop(): Promise<void>;
  /** Up again on the same address and data. */
  start(): Promise<void>;
}

/** Blob rows: `layover-index::blob:<digest>` in Redis, `layover:blob:<digest>` in Postgres' table (src/cache/indexes/). */
export async function startFleetIndex(sandbox: Sandbox, kind: IndexKind): Promise<FleetIndex> {
  if (kind === 'redis') {
    const redis = await startSandboxRedis(sandbox, { address: REDIS_ADDRESS });
    const prefix = 'layover-index::blob:';
    return {
      kind,
      url: redis.url,
      get running() {
        return redis.running;
      },
      indexedDigests: async () => (await redis.cli(['--scan', '--pattern', `${prefix}*`])).split('\n').filter(Boolean).map((key) => key.slice(prefix.length)),
      stop: () => redis.stop(),
      start: () => redis.start(),
    };
  }
  const postgres = await startSandboxPostgres(sandbox, { address: POSTGRES_ADDRESS });
  const prefix = 'layover:blob:';
  return {
    kind,
    url: postgres.url,
    get running() {
      return postgres.running;
    },
    async indexedDigests() {
      // The table exists once the first replica opened the index.
      const rows = await postgres.sql(`SELECT key FROM layover_cache_index WHERE key LIKE '${prefix}%'`);
      return rows.split('\n').filter(Boolean).map((key) => key.slice(prefix.length));
    },
    stop: () => postgres.stop(),
    start: () => postgres.start(),
  };
}
