import { resolve } from 'node:path';
import KeyvSqlite from '@keyv/sqlite';
import type { FastifyBaseLogger } from 'fastify';
import Keyv from 'keyv';
import { CacheIndexUnavailableError } from '../cache-index.js';
import { KeyvCacheIndex, type KeyvIndexOptions } from './keyv-index.js';
import type { RowPage } from './index-rows.js';
import { LocalLeaseStore } from './local-lease.js';
import { prefetchedPages } from './prefetched-pages.js';
import { SqlitePages } from './sqlite-pages.js';

export interface SqliteIndexOptions extends KeyvIndexOptions {
  /** How long a statement waits for another connection's lock before it fails; default 5 s. */
  busyTimeoutMs?: number;
}

const NAMESPACE = 'layover';
/** @keyv/sqlite's table. */
const TABLE = 'keyv';
/**
 * Rows per query at load. A page's parsed rows are garbage once made into entries: at 1,000 rows
 * (about 0.4 MB) most die in V8's young generation; at 5,000 (about 2 MB, the young generation's size)
 * a page was promoted while still being parsed: 151 MB promoted for 100,000 rows instead of 104, and
 * the load took 0.61 and 0.72 s against 0.57 and 0.66 s (medians of eight, two runs taking turns).
 * With the next page read while this one is parsed (SqlitePages), more queries cost no waiting.
 */
const LOAD_PAGE = 1_000;
// Every key of the namespace starts with `layover:`, and `;` is the character after `:`.
const FIRST_KEY = `${NAMESPACE}:`;
const PAST_LAST_KEY = `${NAMESPACE};`;
// Conflicts on the primary key update the row; `WHERE true` lets SQLite parse an upsert after a SELECT.
const UPSERT_MANY = `INSERT INTO ${TABLE} (key, value) SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true ON CONFLICT(key) DO UPDATE SET value = excluded.value`;
const SELECT_MANY = `SELECT key, value FROM ${TABLE} WHERE key IN (SELECT value FROM json_each(?))`;
const DELETE_MANY = `DELETE FROM ${TABLE} WHERE key IN (SELECT value FROM json_each(?))`;
/**
 * Rows per write statement (KeyvCacheIndex's batches): one statement is one transaction, and a page of
 * the table touched by several batches went to the WAL once per batch.
 */
const SQLITE_WRITE_BATCH = 20_000;

/**
 * @keyv/sqlite with batch calls of one statement each. Without `setMany`, keyv writes a batch as one
 * INSERT (and one commit) per row: 0.3 ms a row, so a flush of 1,000 access times held the index queue
 * for 0.3 s; one statement is one transaction. Its `getMany` looked each key up in the result with a
 * linear search.
 */
class BatchingKeyvSqlite extends KeyvSqlite {
  async setMany(entries: ReadonlyArray<{ key: string; value: unknown }>): Promise<void> {
    // In key order: the primary key's b-tree is then walked once, not sought at random (a stable sort,
    // so a key twice in one batch still ends with its last value).
    const sorted = [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    await this.query(UPSERT_MANY, JSON.stringify(sorted.map(({ key, value }) => [key, value])));
  }

  /**
   * One statement, keys in order: the 10,000 deletions of an eviction pass took 0.5 s instead of 1.3-1.4 s
   * (ten statements of 1,000 in LRU order). @keyv/sqlite also read every row back first, to answer
   * whether any existed, which nobody here asks.
   */
  override async deleteMany(keys: string[]): Promise<boolean> {
    await this.query(DELETE_MANY, JSON.stringify([...keys].sort()));
    return true;
  }

  override async getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    const rows = (await this.query(SELECT_MANY, JSON.stringify(keys))) as Array<{ key: string; value: Value }>;
    const found = new Map(rows.map((row) => [row.key, row.value]));
    return keys.map((key) => found.get(key));
  }
}

/**
 * The default index: keyv over @keyv/sqlite in the data directory, rows `layover:blob:<digest>` and
 * `layover:record:<key>` (the layout of every earlier version, so an existing index loads as it is).
 */
export async function openSqliteIndex(file: string, logger: FastifyBaseLogger, options: SqliteIndexOptions = {}): Promise<KeyvCacheIndex> {
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  const sqlite = new BatchingKeyvSqlite({ uri: `sqlite://${file}`, busyTimeout: busyTimeoutMs });
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
      writeBatch: SQLITE_WRITE_BATCH,
      async *rows(): AsyncIterable<RowPage> {
        const pages = await SqlitePages.open(file, { table: TABLE, firstKey: FIRST_KEY, pastLastKey: PAST_LAST_KEY, busyTimeoutMs });
        try {
          for await (const rows of prefetchedPages((after, limit) => pages.page(after, limit), LOAD_PAGE)) {
            yield rows.map(([key, value]) => [key.slice(FIRST_KEY.length), value] as const);
          }
        } finally {
          await pages.close();
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
