import type { FastifyBaseLogger } from 'fastify';
import type { ChangeFeed, ChangeListener } from '../cache-index.js';
import { BACKEND_CALL_TIMEOUT_MS, withinDeadline } from './bounded-calls.js';
import { decodeChange, publishChange } from './change-messages.js';
import { ThrottledLog } from './throttled-log.js';

/** What the feed uses of a node-redis client (its full type depends on the RESP version it was made with). */
interface RedisClient {
  publish(channel: string, message: string): Promise<unknown>;
  duplicate(): RedisClient;
  on(event: 'error' | 'ready', listener: (...args: unknown[]) => void): unknown;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  readonly isReady: boolean;
  readonly isOpen: boolean;
  close(): Promise<void>;
  destroy(): void;
}


/**
 * Index changes over Redis pub/sub. Publishing uses the index's client; listening needs a connection of
 * its own (a subscribed connection can send nothing else), a duplicate with the same reconnect policy.
 * node-redis subscribes again by itself after a reconnect; its 'ready' then tells the listener that
 * messages may have been missed.
 */
export class RedisChangeFeed implements ChangeFeed {
  private readonly client: RedisClient;
  private readonly channel: string;
  readonly backend: string;
  private readonly logger: FastifyBaseLogger;
  readonly throttled: ThrottledLog;
  private readonly bound: <T>(call: () => Promise<T>) => Promise<T>;
  private subscriber: RedisClient | undefined;

  /** `bound` runs a call on the index's client within the index's bound (BoundedCalls). */
  constructor(client: unknown, channel: string, backend: string, logger: FastifyBaseLogger, bound: <T>(call: () => Promise<T>) => Promise<T>) {
    this.client = client as RedisClient;
    this.channel = channel;
    this.backend = backend;
    this.logger = logger;
    this.throttled = new ThrottledLog(logger);
    this.bound = bound;
  }

  publish(...[change, origin]: Parameters<ChangeFeed['publish']>): Promise<void> {
    return publishChange((message) => this.bound(() => this.client.publish(this.channel, message)), change, origin, this);
  }

  async subscribe(listener: ChangeListener): Promise<void> {
    const subscriber = this.client.duplicate();
    this.subscriber = subscriber;
    let subscribed = false;
    // Without a listener an 'error' event would end the process; the index's client already logs the outage.
    subscriber.on('error', () => undefined);
    subscriber.on('ready', () => {
      if (!subscribed) return;
      this.logger.info({ backend: this.backend }, 'cache index: change feed connected again; re-reading the index');
      listener.resubscribed();
    });
    // The duplicate has the index's socket timeout and keep-alive PING, so a dead connection is made
    // again (and 'ready' then re-reads the index); the first subscription is bounded here.
    await withinDeadline(subscriber.connect(), BACKEND_CALL_TIMEOUT_MS, this.backend);
    await withinDeadline(
      subscriber.subscribe(this.channel, (message: string) => {
        const decoded = decodeChange(message);
        if (decoded) listener.change(decoded.change, decoded.origin);
      }),
      BACKEND_CALL_TIMEOUT_MS,
      this.backend,
    );
    subscribed = true;
  }

  close(): Promise<void> | void {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    if (!subscriber.isReady) return subscriber.destroy();
    // A graceful close waits for the replies of commands already sent: not forever.
    return withinDeadline(subscriber.close(), BACKEND_CALL_TIMEOUT_MS, this.backend).catch(() => {
      if (subscriber.isOpen) subscriber.destroy();
    });
  }
}
