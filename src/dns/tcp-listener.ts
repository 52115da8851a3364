import net from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { normalizeAddress } from './loop-guard.js';

export type TcpHandler = (query: Buffer, remote: { address: string; port: number }) => Buffer | null | Promise<Buffer | null>;

export interface TcpListenerOptions {
  handle: TcpHandler;
  logger: FastifyBaseLogger;
  /** A frame announcing more octets than this closes the connection. */
  maxMessageBytes: number;
  /**
   * Each complete query must arrive within this of the connection opening or
   * of the previous complete query. Single bytes do not extend it, so a client
   * trickling a query cannot hold a connection (the slowloris), and an idle
   * connection is closed after it (RFC 7766 §6.2.3: seconds, not minutes).
   */
  queryTimeoutMs: number;
  /** Connections open at once; beyond it the oldest idle one makes room. */
  maxConnections: number;
  /** Connections open at once from one address; beyond it that address's oldest idle one makes room. */
  maxPerClient: number;
  /** Queries answered concurrently per connection before reading pauses. */
  maxInFlight: number;
}

/**
 * Answers written and not yet taken by a client: beyond this the client is not reading them, and the
 * connection is closed. Pausing its reads stops new queries, but the answers of those already in flight
 * (maxInFlight of up to 64 KiB each, on every connection) still came, and stayed in memory until the
 * query deadline.
 */
const MAX_UNREAD_ANSWER_BYTES = 256 * 1024;

interface Connection {
  socket: net.Socket;
  client: string;
  /** Queries read and not yet answered: a connection with none is idle and may be closed for a newcomer. */
  inFlight: number;
}

/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): 2-octet length framing, several
 * queries per connection answered as they complete (possibly out of order,
 * which §7 allows), bounded in message size, per-connection concurrency and
 * time per query. Connections are capped in total and per client address;
 * at a cap the oldest idle connection is closed rather than the new one
 * refused, so connections that hold a slot without asking anything cannot
 * keep out a client with a real query.
 */
export class TcpListener {
  readonly #options: TcpListenerOptions;
  readonly #server: net.Server;
  /** Insertion order is age: the first idle entry is the oldest. */
  readonly #connections = new Set<Connection>();
  readonly #perClient = new Map<string, number>();

  constructor(options: TcpListenerOptions) {
    for (const key of ['queryTimeoutMs', 'maxConnections', 'maxPerClient', 'maxInFlight'] as const) {
      if (!(Number.isInteger(options[key]) && options[key] > 0)) throw new Error(`dns tcp ${key}: expected a positive whole number, got ${options[key]}`);
    }
    this.#options = options;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Binds, rejecting (never throwing asynchronously) on EADDRINUSE and the like. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen({ host, port, exclusive: true }, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#options.logger.error({ err }, 'dns tcp listener error'));
        const address = this.#server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  close(): Promise<void> {
    for (const connection of this.#connections) connection.socket.destroy();
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
    });
  }

  #accept(socket: net.Socket): void {
    const { logger, maxConnections, maxPerClient } = this.#options;
    const client = normalizeAddress(socket.remoteAddress ?? '');
    const fromClient = this.#perClient.get(client) ?? 0;
    const room =
      (fromClient < maxPerClient || this.#evictIdle((c) => c.client === client)) &&
      (this.#connections.size < maxConnections || this.#evictIdle(() => true));
    if (!room) {
      logger.debug({ client }, 'dns tcp connection refused: every slot has a query in flight');
      socket.destroy();
      return;
    }
    this.#serve(socket, client);
  }

  /** Closes the oldest idle connection that `which` selects; false when every one has a query in flight. */
  #evictIdle(which: (connection: Connection) => boolean): boolean {
    for (const connection of this.#connections) {
      if (connection.inFlight === 0 && which(connection)) {
        this.#forget(connection);
        connection.socket.destroy();
        return true;
      }
    }
    return false;
  }

  /** Frees the slot at once; the socket's 'close' event comes later. Safe to call twice. */
  #forget(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    const left = (this.#perClient.get(connection.client) ?? 1) - 1;
    if (left > 0) this.#perClient.set(connection.client, left);
    else this.#perClient.delete(connection.client);
  }

  #serve(socket: net.Socket, client: string): void {
    const { handle, logger, maxMessageBytes, queryTimeoutMs, maxInFlight } = this.#options;
    const connection: Connection = { socket, client, inFlight: 0 };
    this.#connections.add(connection);
    this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1);
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    let buffered: Buffer = Buffer.alloc(0);
    socket.setNoDelay(true);

    // One timer per connection, refreshed only when a whole query has arrived.
    // Answers still being worked on (a forward waits at most its own timeouts)
    // keep the connection open.
    const deadline = setTimeout(function expire() {
      if (connection.inFlight > 0) deadline.refresh();
      else socket.destroy();
    }, queryTimeoutMs);
    socket.on('close', () => {
      clearTimeout(deadline);
      this.#forget(connection);
    });
    socket.on('error', (err) => logger.debug({ err: err.message, client }, 'dns tcp client error'));

    const respond = (reply: Buffer | null): void => {
      if (!reply || socket.destroyed || reply.length > 0xffff) return;
      const frame = Buffer.allocUnsafe(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
      if (socket.writableLength > MAX_UNREAD_ANSWER_BYTES) socket.destroy();
    };
    const settle = (): void => {
      connection.inFlight--;
      drain();
    };
    // Frames wait in `buffered` while maxInFlight queries are being answered,
    // and reading pauses, so a client pipelining thousands of queries holds at
    // most one socket read's worth of them here. Reading also pauses while
    // answers wait for a client that does not read them.
    const drain = (): void => {
      while (buffered.length >= 2 && connection.inFlight < maxInFlight && !socket.destroyed && !socket.writableNeedDrain) {
        const length = buffered.readUInt16BE(0);
        if (length > maxMessageBytes) {
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + length) break;
        // Copied: the handler may keep the query while an upstream answers.
        const query = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        deadline.refresh();
        connection.inFlight++;
        try {
          const reply = handle(query, remote);
          if (reply instanceof Promise) {
            reply
              .then(respond)
              .catch((err: unknown) => logger.error({ err }, 'dns tcp handler failed'))
              .finally(settle);
          } else {
            respond(reply);
            connection.inFlight--;
          }
        } catch (err) {
          logger.error({ err }, 'dns tcp handler failed');
          connection.inFlight--;
        }
      }
      if (connection.inFlight >= maxInFlight || socket.writableNeedDrain) socket.pause();
      else if (socket.isPaused()) socket.resume();
    };

    socket.on('drain', drain);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      drain();
    });
  }
}
