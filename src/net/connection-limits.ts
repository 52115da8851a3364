import type { Metrics } from '../metrics/metrics.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import { normalizeAddress } from '../upstream/address-policy.js';
import { trackedConnection, TrackedConnection, type ConnectionState } from './tracked-connection.js';

export interface ConnectionCaps {
  /** MAX_CONNECTIONS: open connections on this listener; 0 for no cap. */
  maxPerListener: number;
  /** MAX_CONNECTIONS_PER_CLIENT: open connections from one client address on this listener; 0 for no cap. */
  maxPerClient: number;
}

/** A flood sheds thousands of connections: one summary line per this interval, not one per connection. */
const LOG_EVERY_MS = 10_000;

/** Connections that may be shed, oldest first: Sets iterate in insertion order, and a change of state re-inserts. */
class Ledger {
  size = 0;
  readonly handshaking = new Set<TrackedConnection>();
  readonly idle = new Set<TrackedConnection>();

  /** The oldest connection still in its TLS handshake, else the one idle longest; never `spare`. */
  firstToShed(spare: TrackedConnection): TrackedConnection | undefined {
    for (const connection of this.handshaking) if (connection !== spare) return connection;
    for (const connection of this.idle) if (connection !== spare) return connection;
    return undefined;
  }

  place(connection: TrackedConnection, state: ConnectionState | undefined): void {
    this.handshaking.delete(connection);
    this.idle.delete(connection);
    if (state === 'handshaking') this.handshaking.add(connection);
    else if (state === 'idle') this.idle.add(connection);
  }
}

/** The TCP 4-tuple: what the TLS socket of a connection shares with the TCP socket it was accepted as. */
function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

/**
 * Caps the connections of one listener, in total and per client address, so that a client
 * opening sockets by the thousand (and never sending a ClientHello) cannot take the process's
 * file descriptors and memory. At a cap the newcomer is let in and the connection that costs
 * the least to lose goes instead: the oldest one still in its TLS handshake, else the one idle
 * longest (no request in flight). Only when every other connection is busy is the newcomer
 * refused. A per-client cap sheds that client's own connections, so a flood from one address
 * never costs another client its connection.
 *
 * Connections a CONNECT on the proxy listener hands to the TLS listener stay counted once, here
 * on the proxy listener where they were accepted; requests on any listener find their
 * connection through the socket (src/net/tracked-connection.ts).
 */
export class ConnectionLimits {
  readonly #name: string;
  readonly #caps: ConnectionCaps;
  readonly #logger: FastifyBaseLogger;
  readonly #all = new Ledger();
  readonly #clients = new Map<string, Ledger>();
  readonly #open = new Set<TrackedConnection>();
  /** TLS connections in their handshake by 4-tuple, until the server reports them secure. */
  readonly #handshakes = new Map<string, TrackedConnection>();
  /** This listener's series of layover_open_connections; absent without metrics. */
  readonly #openGauge: ReturnType<Metrics['openConnections']['labels']> | undefined;
  #shedSinceLog = 0;
  #refusedSinceLog = 0;
  #loggedAt = -Infinity;

  /** `metrics`: open connections are exported under the listener's name. */
  constructor(name: string, caps: ConnectionCaps, logger: FastifyBaseLogger, readonly metrics?: Metrics) {
    this.#name = name;
    this.#caps = caps;
    this.#logger = logger;
    this.#openGauge = metrics?.openConnections.labels({ listener: name });
    // Present from the first scrape, at 0, so that a dashboard sees the listener before its first client.
    this.#openGauge?.set(0);
  }

  /** Open connections on this listener (those handed on by CONNECT included). */
  get size(): number {
    return this.#all.size;
  }

  /**
   * Tracks every connection `server` accepts, and the requests it serves. `tls`: the server
   * is a TLS listener, whose connections start in their handshake.
   */
  attach(server: Server, options: { tls: boolean }): void {
    server.on('connection', (socket: Socket) => this.#admit(socket, options.tls));
    if (options.tls) {
      server.on('secureConnection', (tlsSocket: TLSSocket) => this.#secured(tlsSocket));
      // Every TLS server is attached here, connections a CONNECT hands on included: the one place that sees every handshake.
      const handshakes = this.metrics?.tlsHandshakes;
      if (handshakes) {
        server.on('secureConnection', () => handshakes.inc({ result: 'ok' }));
        server.on('tlsClientError', () => handshakes.inc({ result: 'failed' }));
      }
    }
    // HTTP/2 requests carry a Proxy of the session's socket, which still finds the connection.
    server.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      const connection = trackedConnection(req.socket);
      if (!connection) return;
      connection.requestStarted();
      res.once('close', () => connection.requestEnded());
    });
  }

  #admit(socket: Socket, tls: boolean): void {
    const address = socket.remoteAddress;
    // Already reset by the client: nothing to count.
    if (address === undefined) return void socket.destroy();
    const connection = new TrackedConnection(socket, normalizeAddress(address), tls, (changed) => this.#place(changed));
    let client = this.#clients.get(connection.client);
    if (!client) this.#clients.set(connection.client, (client = new Ledger()));
    client.size++;
    this.#all.size++;
    this.#openGauge?.inc();
    this.#open.add(connection);
    this.#place(connection);
    const key = tls ? peerKey(socket) : undefined;
    if (key !== undefined) this.#handshakes.set(key, connection);
    socket.once('close', () => {
      if (key !== undefined && this.#handshakes.get(key) === connection) this.#handshakes.delete(key);
      this.#forget(connection);
    });
    this.#enforce(connection);
  }

  #secured(tlsSocket: TLSSocket): void {
    const key = peerKey(tlsSocket);
    const connection = this.#handshakes.get(key);
    if (!connection) return;
    this.#handshakes.delete(key);
    connection.secured(tlsSocket);
  }

  #enforce(newcomer: TrackedConnection): void {
    const { maxPerClient, maxPerListener } = this.#caps;
    const client = this.#clients.get(newcomer.client)!;
    if (maxPerClient > 0 && client.size > maxPerClient) this.#shed(client.firstToShed(newcomer) ?? newcomer, newcomer);
    if (this.#open.has(newcomer) && maxPerListener > 0 && this.#all.size > maxPerListener) {
      this.#shed(this.#all.firstToShed(newcomer) ?? newcomer, newcomer);
    }
  }

  #place(connection: TrackedConnection): void {
    if (!this.#open.has(connection)) return;
    const state = connection.state;
    this.#all.place(connection, state);
    this.#clients.get(connection.client)?.place(connection, state);
  }

  /** Idempotent: a shed connection is forgotten at once, and again when its socket closes. */
  #forget(connection: TrackedConnection): void {
    if (!this.#open.delete(connection)) return;
    this.#all.place(connection, undefined);
    this.#all.size--;
    this.#openGauge?.dec();
    const client = this.#clients.get(connection.client);
    if (!client) return;
    client.place(connection, undefined);
    if (--client.size === 0) this.#clients.delete(connection.client);
  }

  #shed(victim: TrackedConnection, newcomer: TrackedConnection): void {
    this.#forget(victim);
    victim.destroy();
    if (victim === newcomer) this.#refusedSinceLog++;
    else this.#shedSinceLog++;
    const now = Date.now();
    if (now - this.#loggedAt < LOG_EVERY_MS) return;
    this.#logger.warn(
      {
        listener: this.#name,
        client: newcomer.client,
        shed: this.#shedSinceLog,
        refused: this.#refusedSinceLog,
        maxConnections: this.#caps.maxPerListener,
        maxConnectionsPerClient: this.#caps.maxPerClient,
      },
      'connection cap reached: idle connections shed, or new ones refused when none was idle',
    );
    this.#loggedAt = now;
    this.#shedSinceLog = 0;
    this.#refusedSinceLog = 0;
  }
}
