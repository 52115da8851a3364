/**
 * A real Postgres where the index's user has a schema of its own (`"$user"`, first on the default
 * search_path): @keyv/postgres names `public.layover_cache_index`, and every other statement of the
 * index (its load, its compare-and-set, its leases) must name the same table, not one of its own
 * made in the user's schema.
 */
import pg, { type Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { entry } from '../../unit/cache/cache-index-suite.js';

let postgres: PostgresServer;
let pool: Pool;
beforeAll(async () => {
  postgres = await startPostgres();
  pool = new pg.Pool({ connectionString: postgres.url, max: 1 });
  pool.on('error', () => undefined);
  await pool.query(`CREATE SCHEMA "${postgres.user}" AUTHORIZATION "${postgres.user}"`);
}, 60_000);
afterAll(async () => {
  await pool?.end();
  await postgres?.close();
});

const open = () => openCacheIndex({ kind: 'postgres', url: new Secret(postgres.url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });

describe('a Postgres index whose user has a schema of its own', () => {
  it('writes, merges, loads and leases in one table, the one keyv writes', async () => {
    expect((await pool.query('SELECT current_schema() AS schema')).rows[0]?.schema).toBe(postgres.user);
    const writer = await open();
    onTestFinished(() => writer.close());
    await writer.putEntry(entry(1, 10));
    expect(await writer.putEntries([entry(1, 20), entry(2, 20)])).toEqual([]);
    await writer.putRecord('tag', { digest: 'one' });
    expect(await writer.putRecordOver('tag', { digest: 'one' }, { digest: 'two' })).toBe(true);
    const lease = await writer.acquireLease('fill-x', 10_000, { note: 'writer' });
    expect(lease).not.toBeNull();

    const reader = await open();
    onTestFinished(() => reader.close());
    const { entries, records } = await reader.load();
    expect(entries.map((e) => [e.digest, e.lastAccess]).sort()).toEqual([entry(1, 20), entry(2, 20)].map((e) => [e.digest, e.lastAccess]).sort());
    expect(records.get('tag')).toEqual({ digest: 'two' });
    expect(await reader.acquireLease('fill-x', 10_000)).toBeNull();
    expect(await reader.leaseNote('fill-x')).toBe('writer');
    const tables = await pool.query(`SELECT table_schema, table_name FROM information_schema.tables WHERE table_name LIKE 'layover%' ORDER BY 1, 2`);
    expect(tables.rows).toEqual([
      { table_schema: 'public', table_name: 'layover_cache_index' },
      { table_schema: 'public', table_name: 'layover_leases' },
    ]);
  });
});
