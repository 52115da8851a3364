import net from 'node:net';
import type { FastifyBaseLogger } from 'fastify';

export type TcpHandler = (query: Buffer, remote: { address: string; port: number }) => Buffer | null | Promise<Buffer | null>;

export interface TcpListenerOptions {
  handle: TcpHandler;
  logger: FastifyBaseLogger;
  /** A frame announcing more octets than this closes the connection. */
  maxMessageBytes: number;
  /** RFC 7766 §6.2.3: servers close idle connections; seconds, not minutes. */
  idleTimeoutMs: number;
  /** Further connections are refused while this many are open. */
  maxConnections: number;
  /** Queries answered concurrently per connection before reading pauses. */
  maxInFlight: number;
}

/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): 2-octet length framing, several
 * queries per connection answered as they complete (possibly out of order,
 * which §7 allows), bounded in message size, connection count, per-connection
 * concurrency and idle time.
 */
export class TcpListener {
  readonly #options: TcpListenerOptions;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  constructor(options: TcpListenerOptions) {
    this.#options = options;
    this.#server = net.createServer((socket) => this.#serve(socket));
    this.#server.maxConnections = options.maxConnections;
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
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
    });
  }

  #serve(socket: net.Socket): void {
    const { handle, logger, maxMessageBytes, idleTimeoutMs, maxInFlight } = this.#options;
    this.#sockets.add(socket);
    const remote = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    let buffered: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    socket.setNoDelay(true);
    socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', (err) => logger.debug({ err: err.message, client: remote.address }, 'dns tcp client error'));

    const respond = (reply: Buffer | null): void => {
      if (!reply || socket.destroyed || reply.length > 0xffff) return;
      const frame = Buffer.allocUnsafe(2 + reply.length);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      socket.write(frame);
    };
    const settle = (): void => {
      inFlight--;
      drain();
    };
    // Frames wait in `buffered` while maxInFlight queries are being answered,
    // and reading pauses, so a client pipelining thousands of queries holds at
    // most one socket read's worth of them here.
    const drain = (): void => {
      while (buffered.length >= 2 && inFlight < maxInFlight && !socket.destroyed) {
        const length = buffered.readUInt16BE(0);
        if (length > maxMessageBytes) {
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + length) break;
        // Copied: the handler may keep the query while an upstream answers.
        const query = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        inFlight++;
        try {
          const reply = handle(query, remote);
          if (reply instanceof Promise) {
            reply
              .then(respond, (err: unknown) => logger.error({ err }, 'dns tcp handler failed'))
              .finally(settle);
          } else {
            respond(reply);
            inFlight--;
          }
        } catch (err) {
          logger.error({ err }, 'dns tcp handler failed');
          inFlight--;
        }
      }
      if (inFlight >= maxInFlight) socket.pause();
      else if (socket.isPaused()) socket.resume();
    };

    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      drain();
    });
  }
}
