import type { FastifyBaseLogger } from 'fastify';
import pg, { type Client, type Pool } from 'pg';
import type { Secret } from '../../config/secret.js';
import type { ChangeFeed, ChangeListener } from '../cache-index.js';
import { BACKEND_CALL_TIMEOUT_MS, withinDeadline } from './bounded-calls.js';
import type { BoundedPoolConfig } from './postgres.js';
import { decodeChange, publishChange } from './change-messages.js';
import { plainError, ThrottledLog } from './throttled-log.js';

const CONNECT_TIMEOUT_MS = 5_000;
const MAX_RECONNECT_DELAY_MS = 5_000;
const LISTEN_FAILED = 'cache index: the change feed connection failed; reconnecting';

/**
 * Index changes over Postgres LISTEN/NOTIFY. Publishing is a `pg_notify` on the index's pool; listening
 * holds one connection of its own (a pooled one would be handed back and lose the LISTEN). When that
 * connection fails it is made again with a capped backoff, and the listener is told that messages may
 * have been missed in between.
 */
export class PostgresChangeFeed implements ChangeFeed {
  private readonly pool: Pool;
  private readonly url: Secret;
  private readonly channel: string;
  readonly backend: string;
  private readonly logger: FastifyBaseLogger;
  readonly throttled: ThrottledLog;
  private listener: ChangeListener | undefined;
  private current: Client | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private closed = false;

  constructor(pool: Pool, url: Secret, channel: string, backend: string, logger: FastifyBaseLogger) {
    this.pool = pool;
    this.url = url;
    this.channel = channel;
    this.backend = backend;
    this.logger = logger;
    this.throttled = new ThrottledLog(logger);
  }

  publish(...[change, origin]: Parameters<ChangeFeed['publish']>): Promise<void> {
    return publishChange((message) => this.pool.query('SELECT pg_notify($1, $2)', [this.channel, message]), change, origin, this);
  }

  /** Resolves after the first attempt; a failed one is retried in the background like a later cut. */
  async subscribe(listener: ChangeListener): Promise<void> {
    this.listener = listener;
    await this.listen(false);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.current;
    this.current = undefined;
    // Ending waits for the server to say goodbye: not forever.
    if (client) await withinDeadline(client.end(), BACKEND_CALL_TIMEOUT_MS, this.backend).catch(() => undefined);
  }

  private async listen(again: boolean): Promise<void> {
    // The LISTEN is bounded like every index call; the connection is kept alive by TCP keep-alive.
    const config: BoundedPoolConfig = {
      connectionString: this.url.reveal(),
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: BACKEND_CALL_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'layover-feed',
    };
    const client = new pg.Client(config);
    this.current = client;
    const lost = (error?: Error): void => {
      if (this.current !== client || this.closed) return;
      this.current = undefined;
      this.throttled.error({ err: plainError(error ?? new Error('connection ended')), backend: this.backend }, LISTEN_FAILED);
      client.end().catch(() => undefined);
      this.retry();
    };
    // Without a listener an 'error' event would end the process.
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', ({ channel, payload }) => {
      if (channel !== this.channel || payload === undefined) return;
      const decoded = decodeChange(payload);
      if (decoded) this.listener?.change(decoded.change, decoded.origin);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
    } catch (error) {
      lost(error as Error);
      return;
    }
    if (this.closed) return void client.end().catch(() => undefined);
    this.attempts = 0;
    this.throttled.reset(LISTEN_FAILED);
    if (again) {
      this.logger.info({ backend: this.backend }, 'cache index: change feed connected again; re-reading the index');
      this.listener?.resubscribed();
    }
  }

  private retry(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    const delay = Math.min(100 * 2 ** this.attempts, MAX_RECONNECT_DELAY_MS);
    this.attempts += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.listen(true);
    }, delay);
    this.retryTimer.unref();
  }
}
