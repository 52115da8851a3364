import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CacheIndexUnavailableError } from '../../../src/cache/cache-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { freeLoopbackPort } from '../../helpers/server-process.js';
import { cacheIndexSuite, entry } from '../../unit/cache/cache-index-suite.js';

let postgres: PostgresServer;
beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);
afterAll(() => postgres?.close());

cacheIndexSuite('postgres', {
  open: ({ retryMs, logger }) => openCacheIndex({ kind: 'postgres', url: new Secret(postgres.url) }, { sqliteFile: '/nonexistent/unused', logger, retryMs }),
  outage: { stop: () => postgres.stop(), start: () => postgres.start(), get password() {
    return postgres.password;
  } },
});

describe('Postgres index at open', () => {
  const open = (url: string) => openCacheIndex({ kind: 'postgres', url: new Secret(url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });

  it('fails at once, naming postgres and the host, when nothing listens there', async () => {
    const port = await freeLoopbackPort();
    const error = await open(`postgres://layover:secret-pw@127.0.0.1:${port}/layover`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheIndexUnavailableError);
    expect((error as Error).message).toContain(`postgres 127.0.0.1:${port}/layover`);
    expect((error as Error).message).not.toContain('secret-pw');
  });

  it('fails at once, without the password in the message, when the password is refused', async () => {
    const error = await open(`postgres://layover:wrong-password-x@127.0.0.1:${postgres.port}/layover`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheIndexUnavailableError);
    expect((error as Error).message).toContain(`postgres 127.0.0.1:${postgres.port}/layover`);
    expect((error as Error).message).not.toContain('wrong-password-x');
  });
});

describe('Postgres index rows written by someone else', () => {
  it('reports a value keyv cannot read as invalid instead of failing the load', async () => {
    const pool = new pg.Pool({ connectionString: postgres.url, max: 1 });
    // A connection still closing when the server stops reports it: not this test's concern.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    onTestFinished(() => pool.end());
    const index = await openCacheIndex({ kind: 'postgres', url: new Secret(postgres.url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    await pool.query(`INSERT INTO layover_cache_index (key, value) VALUES ('layover:blob:sha256:not-json', '{"value": ['), ('layover:record:garbage', NULL), ('other:key', 'x')`);
    const loaded = await index.load();
    expect(loaded.invalid.sort()).toEqual(['blob:sha256:not-json', 'record:garbage']);
    await index.deleteKeys(loaded.invalid);
    expect((await index.load()).invalid).toEqual([]);
    expect((await pool.query(`SELECT value FROM layover_cache_index WHERE key = 'other:key'`)).rows).toEqual([{ value: 'x' }]);
  });

  it('writes an access time over a row without a value instead of failing it forever', async () => {
    const pool = new pg.Pool({ connectionString: postgres.url, max: 1 });
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    onTestFinished(() => pool.end());
    const written = entry(7, 70);
    const index = await openCacheIndex({ kind: 'postgres', url: new Secret(postgres.url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    await pool.query(`INSERT INTO layover_cache_index (key, value) VALUES ($1, NULL)`, [`layover:blob:${written.digest}`]);
    expect(await index.putEntries([written])).toEqual([]);
    expect(await index.readEntry(written.digest)).toEqual(written);
  });
});
