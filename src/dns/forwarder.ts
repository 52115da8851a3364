import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { Endpoint, LocalEndpoints } from './loop-guard.js';
import { FLAG, HEADER_SIZE, RCODE, sameQuestion } from './wire.js';

export type Transport = 'udp' | 'tcp';

export interface ForwarderOptions {
  upstreams: readonly Endpoint[];
  timeoutMs: number;
  logger: FastifyBaseLogger;
  /** Where the forwarder registers its sockets' local ends, for loop detection. */
  endpoints: LocalEndpoints;
}

/**
 * Relays a query (upstreamQuery's) to the upstream resolvers in order, moving on to
 * the next after a timeout, a socket error or a SERVFAIL/REFUSED. Each attempt
 * uses a fresh socket on a fresh port and a fresh random ID, and accepts only a
 * reply with that ID and the same question: together these make a forged reply
 * hard to slip in (RFC 5452). UDP sockets are connected, so an upstream that is
 * down fails at once with ECONNREFUSED instead of waiting for the timeout.
 */
export class Forwarder {
  readonly #options: ForwarderOptions;
  readonly #cancels = new Set<() => void>();
  /** Upstreams whose last attempt failed; warnings are logged on the change only. */
  readonly #down = new Set<string>();
  #closed = false;

  constructor(options: ForwarderOptions) {
    this.#options = options;
  }

  /**
   * The upstream's reply (still carrying the forwarding ID), or null when no
   * upstream answered. Resolves within timeoutMs × upstreams.
   */
  async forward(query: Buffer, questionEnd: number, transport: Transport): Promise<Buffer | null> {
    let fallback: Buffer | null = null;
    for (const upstream of this.#options.upstreams) {
      if (this.#closed) return null;
      try {
        const reply = await this.#attempt(upstream, query, questionEnd, transport);
        this.#markUp(upstream);
        const rcode = reply[3]! & 0xf;
        if (rcode !== RCODE.SERVFAIL && rcode !== RCODE.REFUSED) return reply;
        fallback = reply;
      } catch (err) {
        if (!this.#closed) this.#markDown(upstream, err);
      }
    }
    return fallback;
  }

  /** Aborts every attempt in flight: their sockets and timers go, their forwards resolve null. */
  close(): void {
    this.#closed = true;
    for (const cancel of [...this.#cancels]) cancel();
  }

  #attempt(upstream: Endpoint, query: Buffer, questionEnd: number, transport: Transport): Promise<Buffer> {
    const packet = Buffer.from(query);
    const id = randomInt(0x10000);
    packet.writeUInt16BE(id, 0);
    const accept = (reply: Buffer): boolean =>
      reply.length >= HEADER_SIZE &&
      reply.readUInt16BE(0) === id &&
      (reply.readUInt16BE(2) & FLAG.QR) !== 0 &&
      reply.readUInt16BE(4) === 1 &&
      sameQuestion(reply, HEADER_SIZE, packet, HEADER_SIZE, questionEnd - HEADER_SIZE);
    const { endpoints, timeoutMs } = this.#options;

    return new Promise<Buffer>((resolve, reject) => {
      let done = false;
      let endpoint: string | undefined;
      let release = (): void => {};
      const finish = (err: Error | null, reply?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#cancels.delete(cancel);
        if (endpoint !== undefined) endpoints.delete(endpoint);
        release();
        if (reply) resolve(reply);
        else reject(err ?? new Error('no reply'));
      };
      const cancel = (): void => finish(new Error('dns server closed'));
      const timer = setTimeout(() => finish(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
      this.#cancels.add(cancel);

      if (transport === 'udp') {
        const socket = dgram.createSocket(net.isIPv6(upstream.host) ? 'udp6' : 'udp4');
        release = () => socket.close();
        socket.on('error', (err) => finish(err));
        socket.on('message', (msg) => {
          if (accept(msg)) finish(null, msg);
        });
        socket.connect(upstream.port, upstream.host, (...args: unknown[]) => {
          if (done) return;
          if (args[0] instanceof Error) return finish(args[0]);
          const local = socket.address();
          endpoint = endpoints.add(local.address, local.port);
          socket.send(packet, (err) => {
            if (err) finish(err);
          });
        });
        return;
      }

      const socket = net.connect({ host: upstream.host, port: upstream.port });
      release = () => socket.destroy();
      let buffered: Buffer = Buffer.alloc(0);
      socket.setNoDelay(true);
      socket.on('connect', () => {
        if (done) return;
        endpoint = endpoints.add(socket.localAddress ?? '', socket.localPort ?? 0);
        const frame = Buffer.allocUnsafe(2 + packet.length);
        frame.writeUInt16BE(packet.length, 0);
        packet.copy(frame, 2);
        socket.write(frame);
      });
      socket.on('data', (chunk: Buffer) => {
        // Frames are at most 2 + 65535 octets, so this stays bounded.
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2) {
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) return;
          const msg = buffered.subarray(2, 2 + length);
          buffered = buffered.subarray(2 + length);
          if (accept(msg)) return finish(null, Buffer.from(msg));
        }
      });
      socket.on('error', (err) => finish(err));
      socket.on('close', () => finish(new Error('upstream closed the connection')));
    });
  }

  #markDown(upstream: Endpoint, err: unknown): void {
    const key = `${upstream.host}:${upstream.port}`;
    const reason = err instanceof Error ? err.message : String(err);
    if (this.#down.has(key)) {
      this.#options.logger.debug({ upstream: key, reason }, 'dns upstream still failing');
      return;
    }
    this.#down.add(key);
    this.#options.logger.warn({ upstream: key, reason }, 'dns upstream failed; trying the next one');
  }

  #markUp(upstream: Endpoint): void {
    const key = `${upstream.host}:${upstream.port}`;
    if (this.#down.delete(key)) this.#options.logger.info({ upstream: key }, 'dns upstream answers again');
  }
}
