import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheIndexUnavailableError } from '../../../src/cache/cache-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startPostgres, type PostgresServer } from '../../helpers/postgres-server.js';
import { freeLoopbackPort } from '../../helpers/redis-server.js';
import { cacheIndexSuite } from '../../unit/cache/cache-index-suite.js';

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
