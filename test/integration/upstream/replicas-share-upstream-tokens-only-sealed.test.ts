/**
 * Upstream bearer tokens shared between replicas through the cache index's records (a real
 * redis-server as the shared index, s3rver as the bucket a shared index needs; SQLite for the
 * bounds): a replica that starts later uses the token another fetched instead of asking the realm
 * again; the index and the change feed never hold the token in clear, nor anything that names the
 * registry, scope or account; a record sealed under another key or altered counts as absent; a
 * token an upstream refused is dropped for every replica; expired records go, and there are never
 * more than the bound.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobCache } from '../../../src/cache/blob-cache.js';
import type { IndexChange } from '../../../src/cache/cache-index.js';
import { parseCacheIndex, type CacheIndexConfig } from '../../../src/config/shared-stores.js';
import { SharedTokens } from '../../../src/upstream/auth/shared-tokens.js';
import { TokenCache, type TokenAnswer } from '../../../src/upstream/auth/token-cache.js';
import { startRedis, type RedisServer } from '../../helpers/redis-server.js';
import { openTestIndex } from '../cache/shared-index-servers.js';
import { openCache, until } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';

/** A hang guard for messages between replicas on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;
const PREFIX = 'upstream-token:';
const KEY = 'https://ghcr.io|https://ghcr.io/token|ghcr.io|repository:team/app:pull|alice@ghcr.io';
const TOKEN = `tok-${randomBytes(24).toString('hex')}`;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 60_000);
afterAll(async () => {
  await redis?.close();
});

/** Counts the realm's answers; every token it hands out is new. */
function realm(lifetimeS = 300) {
  const issued: string[] = [];
  const fetch = (): Promise<TokenAnswer> => {
    const token = issued.length === 0 ? TOKEN : `tok-${randomBytes(24).toString('hex')}`;
    issued.push(token);
    return Promise.resolve({ token, expiresIn: lifetimeS });
  };
  return { issued, fetch };
}

const errors: unknown[] = [];
function tokensOver(cache: BlobCache, secret: Buffer, options: { maxRecords?: number; now?: () => number } = {}): TokenCache {
  const shared = new SharedTokens({ records: cache, secret, onError: (error) => errors.push(error), ...options });
  return new TokenCache({ shared, ...(options.now ? { now: options.now } : {}) });
}

let databases = 0;
/** Replicas of one test: a Redis database and a bucket prefix of its own, so no test sees another's records. */
async function sharedReplicas(test: string) {
  useS3rverCredentials();
  const s3 = await startS3rver();
  const shared = { blobStore: s3.config(`tokens-${test}`), cacheIndex: parseCacheIndex(`${redis.url}/${++databases}`) as CacheIndexConfig };
  const open = async () => (await openCache(shared)).cache;
  return { shared, open };
}

describe('upstream tokens shared over a shared index', () => {
  it('a token one replica fetched is used by the others, one running and one started later, with no fetch of theirs', async () => {
    const { open } = await sharedReplicas('share');
    const secret = randomBytes(32);
    const [a, b] = [await open(), await open()];
    const upstream = realm();
    expect(await tokensOver(a, secret).get(KEY, upstream.fetch)).toBe(TOKEN);
    await until(() => b.recordKeys(PREFIX).length === 1, ARRIVES_WITHIN_MS);
    expect(await tokensOver(b, secret).get(KEY, upstream.fetch)).toBe(TOKEN);
    const later = await open();
    expect(await tokensOver(later, secret).get(KEY, upstream.fetch)).toBe(TOKEN);
    expect(upstream.issued).toHaveLength(1);
    expect(errors).toEqual([]);
  }, 60_000);

  it('the index and the change feed hold neither the token nor what it is for', async () => {
    const { shared, open } = await sharedReplicas('sealed');
    const index = await openTestIndex(shared.cacheIndex);
    const changes: IndexChange[] = [];
    await index.feed!.subscribe({ change: (change) => changes.push(change), resubscribed: () => undefined });
    const a = await open();
    const tokens = tokensOver(a, randomBytes(32));
    await tokens.get(KEY, realm().fetch);
    await until(() => changes.some((change) => change.type === 'record-set'), ARRIVES_WITHIN_MS);
    await index.settled();
    const { records } = await index.load();
    const stored = JSON.stringify([...records].filter(([name]) => name.startsWith(PREFIX)));
    expect(stored).toContain(PREFIX);
    for (const text of [stored, JSON.stringify(changes)]) {
      for (const secretOrName of [TOKEN, Buffer.from(TOKEN).toString('base64'), Buffer.from(TOKEN).toString('base64url'), 'ghcr.io', 'team/app', 'alice']) {
        expect(text).not.toContain(secretOrName);
      }
    }
  }, 60_000);

  it('a record sealed under another key, or altered, counts as absent', async () => {
    const { open } = await sharedReplicas('foreign');
    const [a, b] = [await open(), await open()];
    await tokensOver(a, randomBytes(32)).get(KEY, realm().fetch);
    await until(() => b.recordKeys(PREFIX).length === 1, ARRIVES_WITHIN_MS);
    // Another key: the record does not open, so b fetches its own.
    const other = realm();
    await tokensOver(b, randomBytes(32)).get(KEY, other.fetch);
    expect(other.issued).toHaveLength(1);

    // Someone with write access to the index gives a sealed token a longer life: it no longer opens.
    const secret = randomBytes(32);
    const before = new Set(a.recordKeys(PREFIX));
    await tokensOver(a, secret).get(`${KEY}|2`, realm().fetch);
    const name = a.recordKeys(PREFIX).find((key) => !before.has(key))!;
    const sealed = a.getRecord<{ expiresAt: number }>(name)!;
    await a.setRecord(name, { ...sealed, expiresAt: sealed.expiresAt + 86_400_000 });
    const again = realm();
    await tokensOver(a, secret).get(`${KEY}|2`, again.fetch);
    expect(again.issued).toHaveLength(1);
  }, 60_000);

  it('a token an upstream refused is dropped for every replica', async () => {
    const { open } = await sharedReplicas('refused');
    const secret = randomBytes(32);
    const [a, b] = [await open(), await open()];
    const onA = tokensOver(a, secret);
    await onA.get(KEY, realm().fetch);
    await until(() => b.recordKeys(PREFIX).length === 1, ARRIVES_WITHIN_MS);
    onA.invalidate(KEY, TOKEN);
    await until(() => b.recordKeys(PREFIX).length === 0, ARRIVES_WITHIN_MS);
    const fresh = realm();
    await tokensOver(b, secret).get(KEY, fresh.fetch);
    expect(fresh.issued).toHaveLength(1);
  }, 60_000);
});

describe('upstream tokens in the index: bounds', () => {
  it('removes expired records and keeps at most the bound, those that expire last', async () => {
    const { cache } = await openCache();
    let now = Date.now();
    const tokens = tokensOver(cache, randomBytes(32), { maxRecords: 5, now: () => now });
    for (let i = 0; i < 8; i++) await tokens.get(`${KEY}|${i}`, () => Promise.resolve({ token: `t${i}`, expiresIn: 100 + i * 100 }));
    await until(() => cache.recordKeys(PREFIX).length === 5);
    const expiries = cache.recordKeys(PREFIX).map((name) => cache.getRecord<{ expiresAt: number }>(name)!.expiresAt);
    expect(Math.min(...expiries)).toBeGreaterThan(now + 350_000);

    // Junk under the prefix (anyone who can write the index could leave it) opens as nothing and is swept.
    const junk = [{ v: 1, expiresAt: 'never' }, { v: 1, expiresAt: now + 86_400_000, iv: '!', tag: '', data: 'x' }, 'token', null];
    for (const [i, value] of junk.entries()) await cache.setRecord(`${PREFIX}junk-${i}`, value);
    now += 2 * 3_600_000;
    await tokens.get(`${KEY}|late`, () => Promise.resolve({ token: 'late', expiresIn: 300 }));
    await until(() => cache.recordKeys(PREFIX).length === 1);
    expect(errors).toEqual([]);
  });
});
