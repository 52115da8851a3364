import KeyvPostgres, { type KeyvPostgresOptions } from '@keyv/postgres';
import type { FastifyBaseLogger } from 'fastify';
import Keyv from 'keyv';
import pg, { type Pool, type PoolConfig } from 'pg';
import type { Secret } from '../../config/secret.js';
import { CacheIndexUnavailableError } from '../cache-index.js';
import { BACKEND_CALL_TIMEOUT_MS, BoundedCalls, withinDeadline } from './bounded-calls.js';
import { PAGE_SIZE } from './index-rows.js';
import { KeyvCacheIndex, type IndexBackend, type KeyvIndexOptions } from './keyv-index.js';
import { PostgresChangeFeed } from './postgres-feed.js';
import { CREATE_LEASE_TABLE, PostgresLeaseStore } from './postgres-lease.js';
import { SCHEMA } from './postgres-schema.js';
import { postgresRowSwap } from './postgres-swap.js';
import { plainError, ThrottledLog } from './throttled-log.js';

/** A table of its own, so the index can share a database with anything else; keys `layover:blob:<digest>`, `layover:record:<key>`. */
const TABLE_NAME = 'layover_cache_index';
const TABLE = `${SCHEMA}.${TABLE_NAME}`;
const NAMESPACE = 'layover';
/** A plain identifier: LISTEN takes no parameter. */
const CHANGE_CHANNEL = 'layover_cache_index_changes';
/** Record keys carry registry, repository and reference: room for the longest of each. */
const KEY_SIZE = 2048;
const CONNECT_TIMEOUT_MS = 5_000;
/** At most this many connections per replica: the writes are queued one batch at a time anyway. */
const POOL_SIZE = 4;
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${TABLE} (key VARCHAR(${KEY_SIZE}) PRIMARY KEY, value TEXT)`;
const PAGE = `SELECT key, value FROM ${TABLE} WHERE key LIKE '${NAMESPACE}:%' AND key > $1 ORDER BY key LIMIT ${PAGE_SIZE}`;

/** `postgres 10.0.0.5:5432/layover`: where the index is, for messages; the URL's password never appears. */
export function postgresName(url: URL): string {
  return `postgres ${url.hostname}:${url.port || '5432'}${url.pathname.length > 1 ? url.pathname : ''}`;
}

/** @keyv/postgres with our pool instead of its process-wide one (whose idle-connection errors nobody hears). */
class PooledKeyvPostgres extends KeyvPostgres {
  // Called by the base constructor, when only `opts` is set.
  override async connect(): Promise<(sql: string, values?: unknown[]) => Promise<Array<Record<string, unknown>>>> {
    const pool = poolOf(this.opts);
    return async (sql, values) => (await pool.query(sql, values)).rows;
  }

  override async disconnect(): Promise<void> {
    await poolOf(this.opts).end();
  }
}

/** node-postgres takes `query_timeout` (ms, per query, on the client side) on pools and clients alike. */
export type BoundedPoolConfig = PoolConfig & { query_timeout: number; statement_timeout?: number; keepAlive?: boolean };

const poolOf = (opts: KeyvPostgresOptions): Pool => (opts as KeyvPostgresOptions & { pool: Pool }).pool;

/**
 * The index in a Postgres that several replicas share: keyv over @keyv/postgres on a pool of at most
 * POOL_SIZE connections. A Postgres that cannot be reached (or refuses the credentials) at open is an
 * error at once; later, failed queries fail the write, which the index keeps and replays. Every query is
 * bounded (BoundedCalls): a Postgres that accepts and never answers fails like one that is down.
 */
export async function openPostgresIndex(url: Secret, logger: FastifyBaseLogger, options: KeyvIndexOptions = {}): Promise<KeyvCacheIndex> {
  return new KeyvCacheIndex(await openPostgresBackend(url, logger), logger, options);
}

/** The Postgres under an index (openPostgresIndex): its tables made, or CacheIndexUnavailableError. */
export async function openPostgresBackend(url: Secret, logger: FastifyBaseLogger): Promise<IndexBackend> {
  let parsed: URL;
  try {
    parsed = new URL(url.reveal());
  } catch {
    throw new CacheIndexUnavailableError('cannot open the cache index: CACHE_INDEX is not a postgres:// URL');
  }
  const name = postgresName(parsed);
  const throttled = new ThrottledLog(logger);
  const config: BoundedPoolConfig = {
    connectionString: url.reveal(),
    max: POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // A query that got no answer in time gives its connection up (the pool makes a new one) instead of holding it.
    query_timeout: BACKEND_CALL_TIMEOUT_MS,
    // And the server gives the statement up too, so a write this replica counted as failed (and will
    // replay) cannot land later, behind newer ones.
    statement_timeout: BACKEND_CALL_TIMEOUT_MS - 500,
    idleTimeoutMillis: 30_000,
    application_name: 'layover',
  };
  const pool = new pg.Pool(config);
  const calls = boundQueries(pool, name, logger);
  // An idle connection that the server closes (a restart, a failover) emits 'error' on the pool: unheard, it would end the process.
  const connectionFailed = (error: Error): void => throttled.error({ err: plainError(error), backend: name }, 'cache index: a Postgres connection failed');
  pool.on('error', connectionFailed);
  // A connection the pool has let go of (at close) can still hear the server shut down: it needs its own listener.
  pool.on('connect', (client) => client.on('error', connectionFailed));
  try {
    await createTable(pool, CREATE_TABLE);
    await createTable(pool, CREATE_LEASE_TABLE);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new CacheIndexUnavailableError(`cannot reach the cache index at ${name}: ${(error as Error).message}`, { cause: plainError(error) });
  }
  const storeOptions: KeyvPostgresOptions & { pool: Pool } = { schema: SCHEMA, table: TABLE_NAME, keySize: KEY_SIZE, pool };
  const keyv = new Keyv<unknown>({ store: new PooledKeyvPostgres(storeOptions), namespace: NAMESPACE, throwOnErrors: true, emitErrors: false });
  const leases = new PostgresLeaseStore(pool);
  const prefix = `${NAMESPACE}:`;
  const feed = new PostgresChangeFeed(pool, url, CHANGE_CHANNEL, name, logger);
  return {
    name,
    keyv,
    // keyv's iterator for Postgres stops silently at a failed page; this one throws, so a load is whole or fails.
    async *rows() {
      let after = '';
      for (;;) {
        const { rows } = await pool.query(PAGE, [after]);
        yield rows.map((row) => [String(row.key).slice(prefix.length), row.value] as const);
        if (rows.length < PAGE_SIZE) return;
        after = String(rows[rows.length - 1]!.key);
      }
    },
    acquireLease: (leaseName, ttlMs, leaseOptions) => leases.acquireLease(leaseName, ttlMs, leaseOptions),
    leaseNote: (leaseName) => leases.leaseNote(leaseName),
    feed,
    // The pool's queries are bounded (boundQueries).
    swap: postgresRowSwap(pool, TABLE, prefix),
    close: async () => {
      calls.close();
      await feed.close();
      // Ending waits for every connection to say goodbye: not forever.
      await withinDeadline(pool.end(), BACKEND_CALL_TIMEOUT_MS, name);
    },
  };
}

/**
 * Every query on the pool (keyv's, the rows, the leases, the feed's NOTIFY) runs within the bound and
 * fails at once while the server is silent; a `SELECT 1` outside the gate probes for its return.
 * The pool's own `query` is replaced on this instance because the lease store and keyv's store take
 * the pool itself; only the promise form is used on it.
 */
function boundQueries(pool: Pool, name: string, logger: FastifyBaseLogger): BoundedCalls {
  const query = pool.query.bind(pool);
  const calls = new BoundedCalls(name, logger, { probe: () => query('SELECT 1') });
  pool.query = (text, values) => calls.run(() => query(text, values));
  return calls;
}

/** CREATE TABLE IF NOT EXISTS, where two replicas starting at once may race on the catalog (23505): the other one made it. */
async function createTable(pool: Pool, sql: string): Promise<void> {
  try {
    await pool.query(sql);
  } catch (error) {
    if ((error as { code?: unknown }).code !== '23505') throw error;
  }
}
