import { createClient } from '@keyv/redis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CacheIndexUnavailableError } from '../../../src/cache/cache-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { freeLoopbackPort } from '../../helpers/server-process.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { cacheIndexSuite, entry } from '../../unit/cache/cache-index-suite.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis?.close());

cacheIndexSuite('redis', {
  open: ({ retryMs, logger }) => openCacheIndex({ kind: 'redis', url: new Secret(redis.url) }, { sqliteFile: '/nonexistent/unused', logger, retryMs }),
  outage: { stop: () => redis.stop(), start: () => redis.start(), get password() {
    return redis.password;
  } },
});

describe('Redis index at open', () => {
  const open = (url: string) => openCacheIndex({ kind: 'redis', url: new Secret(url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });

  it('fails at once, naming redis and the host, when nothing listens there', async () => {
    const port = await freeLoopbackPort();
    const error = await open(`redis://:secret-pw@127.0.0.1:${port}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheIndexUnavailableError);
    expect((error as Error).message).toContain(`redis 127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain('secret-pw');
  });

  it('fails at once, without the password in the message, when the password is refused', async () => {
    const error = await open(`redis://:wrong-password-x@127.0.0.1:${redis.port}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheIndexUnavailableError);
    expect((error as Error).message).toContain(`redis 127.0.0.1:${redis.port}`);
    expect((error as Error).message).not.toContain('wrong-password-x');
  });
});

describe('Redis index rows written by someone else', () => {
  it('reports a value keyv cannot read as invalid instead of failing the load', async () => {
    const client = createClient({ url: redis.url });
    client.on('error', () => undefined);
    await client.connect();
    onTestFinished(() => client.close());
    await client.set('layover-index::blob:sha256:not-json', '{"value": [');
    await client.set('layover-index::record:garbage', '\u0000\u0001');
    await client.set('unrelated-key', 'left alone');
    const index = await openCacheIndex({ kind: 'redis', url: new Secret(redis.url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    const loaded = await index.load();
    expect(loaded.invalid.sort()).toEqual(['blob:sha256:not-json', 'record:garbage']);
    await index.deleteKeys(loaded.invalid);
    expect((await index.load()).invalid).toEqual([]);
    expect(await client.get('unrelated-key')).toBe('left alone');
  });

  it('writes an access time over a key of another type under its namespace instead of failing it forever', async () => {
    const client = createClient({ url: redis.url });
    client.on('error', () => undefined);
    await client.connect();
    onTestFinished(() => client.close());
    const written = entry(7, 70);
    await client.hSet(`layover-index::blob:${written.digest}`, 'not', 'a string');
    const index = await openCacheIndex({ kind: 'redis', url: new Secret(redis.url) }, { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger });
    onTestFinished(() => index.close());
    expect(await index.putEntries([written])).toEqual([]);
    expect(await index.readEntry(written.digest)).toEqual(written);
  });
});
