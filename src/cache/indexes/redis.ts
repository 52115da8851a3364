import KeyvRedis, { createClient } from '@keyv/redis';
import type { FastifyBaseLogger } from 'fastify';
import Keyv from 'keyv';
import type { Secret } from '../../config/secret.js';
import { CacheIndexUnavailableError } from '../cache-index.js';
import { BACKEND_CALL_TIMEOUT_MS, BoundedCalls, withinDeadline } from './bounded-calls.js';
import { PAGE_SIZE } from './index-rows.js';
import { KeyvCacheIndex, type IndexBackend, type KeyvIndexOptions } from './keyv-index.js';
import { RedisChangeFeed } from './redis-feed.js';
import { RedisLeaseStore } from './redis-lease.js';
import { redisRowSwap } from './redis-swap.js';
import { plainError, ThrottledLog } from './throttled-log.js';

/** Keys `layover-index::blob:<digest>` and `layover-index::record:<key>`; leases under `layover-lease::`. */
const NAMESPACE = 'layover-index';
const LEASE_PREFIX = 'layover-lease';
const CHANGE_CHANNEL = 'layover-index:changes';
const CONNECT_TIMEOUT_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 5_000;
/**
 * A connection on which nothing moves for a call's bound is made again (node-redis' socket timeout),
 * so a connection that went dead without a word (a frozen server, a path that drops packets) is not
 * waited on until TCP gives up; the keep-alive PING, at half that, keeps a healthy idle one moving.
 */
const SOCKET_TIMEOUT_MS = BACKEND_CALL_TIMEOUT_MS;
const PING_INTERVAL_MS = BACKEND_CALL_TIMEOUT_MS / 2;

/** `redis 10.0.0.5:6379`: where the index is, for messages; the URL's password never appears. */
export function redisName(url: URL): string {
  return `redis ${url.hostname}:${url.port || '6379'}${url.protocol === 'rediss:' ? ' (TLS)' : ''}`;
}

/**
 * The index in a Redis that several replicas share: keyv over @keyv/redis with a client of our own, so
 * that commands fail at once while Redis is down (no offline queue to grow without bound; the index
 * keeps and replays failed writes itself) and a Redis that cannot be reached at open is an error at once.
 * Every call is bounded (BoundedCalls): a Redis that accepts and never answers fails like one that is down.
 */
export async function openRedisIndex(url: Secret, logger: FastifyBaseLogger, options: KeyvIndexOptions = {}): Promise<KeyvCacheIndex> {
  return new KeyvCacheIndex(await openRedisBackend(url, logger), logger, options);
}

/** The Redis under an index (openRedisIndex): connected, or CacheIndexUnavailableError. */
export async function openRedisBackend(url: Secret, logger: FastifyBaseLogger): Promise<IndexBackend> {
  let parsed: URL;
  try {
    parsed = new URL(url.reveal());
  } catch {
    throw new CacheIndexUnavailableError('cannot open the cache index: CACHE_INDEX is not a redis:// URL');
  }
  const name = redisName(parsed);
  const throttled = new ThrottledLog(logger);
  const calls = new BoundedCalls(name, logger);
  let opened = false;
  const client = createClient({
    url: url.reveal(),
    disableOfflineQueue: true,
    pingInterval: PING_INTERVAL_MS,
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Also bounds the handshake (AUTH, HELLO) of every connection, the first one at open included.
      socketTimeout: SOCKET_TIMEOUT_MS,
      // At open, one refusal is the answer (exit 2 with a clear line); later, keep trying with a capped backoff.
      reconnectStrategy: (retries: number, cause: Error) => (opened ? Math.min(100 * 2 ** retries, MAX_RECONNECT_DELAY_MS) : cause),
    },
  });
  // Without a listener an 'error' event would end the process; a reconnecting client emits one per attempt.
  client.on('error', (error: unknown) => throttled.error({ err: plainError(error), backend: name }, 'cache index: Redis connection failed; reconnecting'));
  client.on('ready', () => {
    if (opened) logger.info({ backend: name }, 'cache index: Redis connection ready');
    throttled.reset('cache index: Redis connection failed; reconnecting');
    calls.answered();
  });
  client.on('ping-interval', () => calls.answered());
  try {
    await client.connect();
    opened = true;
  } catch (error) {
    // A client whose connect failed is closed already.
    if (client.isOpen) client.destroy();
    throw new CacheIndexUnavailableError(`cannot reach the cache index at ${name}: ${(error as Error).message}`, { cause: plainError(error) });
  }
  // node-redis types a client by its RESP version; the adapter takes any client and only calls plain commands.
  const store = new KeyvRedis(client as unknown as ConstructorParameters<typeof KeyvRedis>[0], { namespace: NAMESPACE, throwOnErrors: true, throwOnConnectError: true });
  // The store prefixes keys itself; keyv must not add a second prefix.
  const keyv = new Keyv<unknown>({ store, namespace: NAMESPACE, useKeyPrefix: false, throwOnErrors: true, emitErrors: false });
  const leases = new RedisLeaseStore((script, args) => calls.run(() => client.eval(script, args)), LEASE_PREFIX);
  const prefix = `${NAMESPACE}::`;
  const feed = new RedisChangeFeed(client, CHANGE_CHANNEL, name, logger, (call) => calls.run(call));
  return {
    name,
    keyv,
    async *rows() {
      // keyv's own iterator scans 10 keys per call; a page of 1000 is one SCAN and one MGET.
      let cursor = '0';
      do {
        const page = await client.scan(cursor, { MATCH: `${prefix}*`, COUNT: PAGE_SIZE, TYPE: 'string' });
        cursor = String(page.cursor);
        if (page.keys.length === 0) continue;
        const values = await client.mGet(page.keys);
        // A key deleted between SCAN and MGET has no value.
        yield page.keys.flatMap((key, i) => (values[i] === null || values[i] === undefined ? [] : [[key.slice(prefix.length), values[i]] as const]));
      } while (cursor !== '0');
    },
    // A MULTI (keyv's setMany) sent while reconnecting waits out the reconnect attempts instead of failing.
    connected: () => client.isReady,
    bound: (call) => calls.run(call),
    acquireLease: (leaseName, ttlMs, leaseOptions) => leases.acquireLease(leaseName, ttlMs, leaseOptions),
    leaseNote: (leaseName) => leases.leaseNote(leaseName),
    feed,
    // Runs within the index's bound (KeyvCacheIndex's call), like keyv's calls.
    swap: redisRowSwap((script, args) => client.eval(script, args), prefix),
    close: async () => {
      calls.close();
      await feed.close();
      // A graceful close waits for the replies of calls already sent: not forever.
      if (client.isReady) await withinDeadline(client.close(), BACKEND_CALL_TIMEOUT_MS, name).catch(() => {
        if (client.isOpen) client.destroy();
      });
      else client.destroy();
    },
  };
}
