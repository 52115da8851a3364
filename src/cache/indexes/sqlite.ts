import { resolve } from 'node:path';
import KeyvSqlite from '@keyv/sqlite';
import type { FastifyBaseLogger } from 'fastify';
import Keyv from 'keyv';
import { CacheIndexUnavailableError } from '../cache-index.js';
import { KeyvCacheIndex, type KeyvIndexOptions } from './keyv-index.js';
import { PAGE_SIZE } from './index-rows.js';
import { LocalLeaseStore } from './local-lease.js';

export interface SqliteIndexOptions extends KeyvIndexOptions {
  /** How long a statement waits for another connection's lock before it fails; default 5 s. */
  busyTimeoutMs?: number;
}

/**
 * The default index: keyv over @keyv/sqlite in the data directory, rows `layover:blob:<digest>` and
 * `layover:record:<key>` (the layout of every earlier version, so an existing index loads as it is).
 */
export async function openSqliteIndex(file: string, logger: FastifyBaseLogger, options: SqliteIndexOptions = {}): Promise<KeyvCacheIndex> {
  const sqlite = new KeyvSqlite({ uri: `sqlite://${file}`, busyTimeout: options.busyTimeoutMs ?? 5_000, iterationLimit: PAGE_SIZE });
  try {
    // WAL + synchronous=NORMAL: 0.4 ms per set instead of 2 ms, and still durable across a process crash.
    const mode: unknown = await sqlite.query('PRAGMA journal_mode=WAL');
    await sqlite.query('PRAGMA synchronous=NORMAL');
    if (!JSON.stringify(mode).includes('wal')) logger.warn({ file, mode }, 'cache index: WAL journal mode not available');
  } catch (error) {
    await sqlite.close().catch(() => undefined);
    throw new CacheIndexUnavailableError(`cannot open the cache index ${file}`, { cause: error });
  }
  // Errors are thrown (and logged once, with their cause, where they are handled), not emitted.
  const keyv = new Keyv<unknown>({ store: sqlite, namespace: 'layover', throwOnErrors: true, emitErrors: false });
  const leases = new LocalLeaseStore(`sqlite:${resolve(file)}`);
  return new KeyvCacheIndex(
    {
      name: `sqlite ${file}`,
      keyv,
      async *rows() {
        const iterate = keyv.iterator;
        if (!iterate) throw new Error('cache index: the sqlite store cannot be iterated');
        yield* iterate(undefined) as AsyncIterable<[string, unknown]>;
      },
      acquireLease: (name, ttlMs, options) => leases.acquireLease(name, ttlMs, options),
      leaseNote: (name) => leases.leaseNote(name),
      close: () => keyv.disconnect(),
    },
    logger,
    options,
  );
}
