import { resolve } from 'node:path';
import KeyvSqlite from '@keyv/sqlite';
import type { FastifyBaseLogger } from 'fastify';
import Keyv from 'keyv';
import { CacheIndexUnavailableError } from '../cache-index.js';
import { KeyvCacheIndex, type KeyvIndexOptions } from './keyv-index.js';
import type { RowPage } from './index-rows.js';
import { LocalLeaseStore } from './local-lease.js';

export interface SqliteIndexOptions extends KeyvIndexOptions {
  /** How long a statement waits for another connection's lock before it fails; default 5 s. */
  busyTimeoutMs?: number;
}

const NAMESPACE = 'layover';
/** @keyv/sqlite's table. */
const TABLE = 'keyv';
/** Rows per query at load: 100,000 rows in ten queries, each a range scan of the primary key. */
const LOAD_PAGE = 10_000;
// Every key of the namespace starts with `layover:`, and `;` is the character after `:`.
const FIRST_KEY = `${NAMESPACE}:`;
const PAST_LAST_KEY = `${NAMESPACE};`;
const PAGE = `SELECT key, value FROM ${TABLE} WHERE key > ? AND key < ? ORDER BY key LIMIT ?`;
// Conflicts on the primary key update the row; `WHERE true` lets SQLite parse an upsert after a SELECT.
const UPSERT_MANY = `INSERT INTO ${TABLE} (key, value) SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true ON CONFLICT(key) DO UPDATE SET value = excluded.value`;
const SELECT_MANY = `SELECT key, value FROM ${TABLE} WHERE key IN (SELECT value FROM json_each(?))`;

/**
 * @keyv/sqlite with batch calls of one statement each. Without `setMany`, keyv writes a batch as one
 * INSERT (and one commit) per row: 0.3 ms a row, so a flush of 1,000 access times held the index queue
 * for 0.3 s; one statement is one transaction. Its `getMany` looked each key up in the result with a
 * linear search.
 */
class BatchingKeyvSqlite extends KeyvSqlite {
  async setMany(entries: ReadonlyArray<{ key: string; value: unknown }>): Promise<void> {
    await this.query(UPSERT_MANY, JSON.stringify(entries.map(({ key, value }) => [key, value])));
  }

  override async getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    const rows = (await this.query(SELECT_MANY, JSON.stringify(keys))) as Array<{ key: string; value: Value }>;
    const found = new Map(rows.map((row) => [row.key, row.value]));
    return keys.map((key) => found.get(key));
  }

  /** Up to `limit` rows of the namespace after `after`, in key order (a range scan, where keyv's iterator used OFFSET). */
  async page(after: string, limit: number): Promise<Array<{ key: string; value: unknown }>> {
    return (await this.query(PAGE, after, PAST_LAST_KEY, limit)) as Array<{ key: string; value: unknown }>;
  }
}

/**
 * The default index: keyv over @keyv/sqlite in the data directory, rows `layover:blob:<digest>` and
 * `layover:record:<key>` (the layout of every earlier version, so an existing index loads as it is).
 */
export async function openSqliteIndex(file: string, logger: FastifyBaseLogger, options: SqliteIndexOptions = {}): Promise<KeyvCacheIndex> {
  const sqlite = new BatchingKeyvSqlite({ uri: `sqlite://${file}`, busyTimeout: options.busyTimeoutMs ?? 5_000 });
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
  const keyv = new Keyv<unknown>({ store: sqlite, namespace: NAMESPACE, throwOnErrors: true, emitErrors: false });
  const leases = new LocalLeaseStore(`sqlite:${resolve(file)}`);
  return new KeyvCacheIndex(
    {
      name: `sqlite ${file}`,
      keyv,
      async *rows(): AsyncIterable<RowPage> {
        for (let after = FIRST_KEY; ; ) {
          const rows = await sqlite.page(after, LOAD_PAGE);
          yield rows.map((row) => [row.key.slice(FIRST_KEY.length), row.value] as const);
          if (rows.length < LOAD_PAGE) return;
          after = rows[rows.length - 1]!.key;
        }
      },
      acquireLease: (name, ttlMs, options) => leases.acquireLease(name, ttlMs, options),
      leaseNote: (name) => leases.leaseNote(name),
      close: () => keyv.disconnect(),
    },
    logger,
    options,
  );
}
