import type { Metrics } from '../metrics/metrics.js';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, TLSSocket, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { Authenticator } from '../client-auth/authenticator.js';
import { signInSource } from '../client-auth/sign-in-source.js';
import { trackedConnection } from '../net/tracked-connection.js';
import { SERVER_CIPHERS } from '../tls/server-ciphers.js';
import { rememberConnectAuthority, sniMatches } from './connect-authority.js';
import { decideConnect, type ConnectRules } from './connect-decision.js';
import { formatTarget, parseConnectTarget, type ConnectTarget } from './connect-target.js';
import { dialTarget, DialError, type DialOptions } from './dial-target.js';
import { CONNECTION_ESTABLISHED, refuseConnect } from './raw-response.js';

type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

/** The TLS listener of port 443 as far as CONNECT needs it; fastify's server is one. */
export type InterceptServer = TlsServer & { closeIdleConnections?(): void };

export interface ConnectProxyOptions {
  logger: FastifyBaseLogger;
  rules: ConnectRules;
  /** Intercepted connections join this listener once their handshake is done: its routes, hooks and timeouts. */
  tlsServer: InterceptServer;
  /** The app's certificates: the default one and the SNI callback that mints one per intercepted name. */
  tls: { key: string; cert: string; SNICallback: SniCallback };
  dial: DialOptions;
  /** CLIENT_AUTH: a tunnel needs a Proxy-Authorization this accepts; null when clients are not authenticated. */
  authenticator: Authenticator | null;
  /** Without an authenticator: the client addresses a tunnel is for (CONNECT_ALLOW_NETWORKS); null: anyone. */
  tunnelClients: { includes(address: string): boolean } | null;
  /** Counts handshakes inside intercepted tunnels that fail; the TLS listener counts the ones that complete. */
  metrics?: Metrics;
  timeouts: {
    /** TLS_HANDSHAKE_TIMEOUT: for the TLS handshake inside an intercepted CONNECT, as on port 443. */
    handshakeMs: number;
    /** A tunnel silent this long in both directions is closed. */
    idleMs: number;
  };
}

/** Fields of the one log line per CONNECT. */
interface ConnectLog {
  client: string | undefined;
  target: string;
  decision?: 'intercept' | 'tunnel' | 'deny' | 'invalid';
  status?: number;
  reason?: string;
  user?: string;
  sni?: string;
  bytesUp?: number;
  bytesDown?: number;
  ms?: number;
}

/** Challenge of a 407: the credentials `docker login` would use, sent as Proxy-Authorization. */
export const PROXY_CHALLENGE = 'Basic realm="Layover"';

/**
 * HTTPS_PROXY mode: `CONNECT host:port` on the proxy listener. For a name Layover intercepts it
 * answers 200, terminates TLS itself with that name's certificate and hands the connection to the
 * TLS listener, where requests take the routes of port 443 (same cache, same client
 * authentication). Anything else is tunnelled byte for byte to the real host (443 and registry
 * ports only, public addresses only unless REDIRECT_ALLOW_NETWORKS says otherwise, credentials
 * required when CLIENT_AUTH is on) or refused, as CONNECT_POLICY says.
 */
export class ConnectProxy {
  readonly #options: ConnectProxyOptions;
  readonly #defaultContext: SecureContext;
  /** Sockets this proxy still owns: refused, dialling, tunnelled or in a handshake. */
  readonly #owned = new Set<Socket>();
  /** Intercepted connections handed to the TLS listener. */
  readonly #handedOver = new Set<TLSSocket>();
  #closing = false;

  constructor(options: ConnectProxyOptions) {
    this.#options = options;
    this.#defaultContext = createSecureContext({ key: options.tls.key, cert: options.tls.cert, ...SERVER_CIPHERS });
  }

  /** Takes the CONNECT requests of `server` (the proxy listener; its other requests stay its own). */
  attach(server: HttpServer): void {
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#handle(req, socket as Socket, head).catch((error: unknown) => {
        this.#options.logger.error({ err: error, target: req.url }, 'CONNECT failed');
        socket.destroy();
      });
    });
  }

  /**
   * Stops taking CONNECTs, ends tunnels and handshakes at once, and gives intercepted connections up
   * to `graceMs` to finish the request in flight (their listener closes the idle ones).
   */
  async close(graceMs = 20_000): Promise<void> {
    this.#closing = true;
    for (const socket of this.#owned) socket.destroy();
    const { tlsServer } = this.#options;
    // The HTTP/2 listener (LAYOVER_HTTP2) cannot tell which of its HTTP/1.1 connections are idle.
    const deadline = Date.now() + (tlsServer.closeIdleConnections ? graceMs : 0);
    while (this.#handedOver.size > 0 && Date.now() < deadline) {
      tlsServer.closeIdleConnections?.();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const socket of this.#handedOver) socket.destroy();
  }

  async #handle(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const started = performance.now();
    // What the client asked for, until it is known to be a plain host:port: cut short, without user info.
    const asked = String(req.url ?? '').replace(/^.*@/s, '[redacted]@').slice(0, 300);
    const log: ConnectLog = { client: socket.remoteAddress, target: asked };
    const finish = (fields: Partial<ConnectLog>): void => {
      Object.assign(log, fields, { ms: Math.round((performance.now() - started) * 10) / 10 });
      this.#options.logger.info(log, 'connect');
    };
    const refuse = (status: number, reason: string, message: string, headers?: Record<string, string>): void => {
      refuseConnect(socket, status, message, headers);
      finish({ status, reason });
    };
    // The listener's connection timeout was for the request head; what follows has its own.
    socket.setTimeout(0);
    socket.on('error', () => undefined); // the owner of the moment destroys it; 'close' ends the story
    this.#owned.add(socket);
    socket.once('close', () => this.#owned.delete(socket));
    // Busy for the proxy listener's caps while the CONNECT is decided and while a tunnel lasts.
    trackedConnection(socket)?.requestStarted();

    const target = parseConnectTarget(req.url);
    if (!target) {
      log.decision = 'invalid';
      return refuse(400, 'malformed', 'expected CONNECT host:port, with a DNS name or an IP address and a port from 1 to 65535');
    }
    log.target = formatTarget(target);
    if (this.#closing) return refuse(503, 'closing', 'Layover is shutting down');

    const verdict = decideConnect(target, this.#options.rules);
    log.decision = verdict.decision;
    if (verdict.decision === 'deny') {
      return verdict.reason === 'policy'
        ? refuse(403, 'policy', `CONNECT to ${log.target} refused: Layover only serves the registries it caches (CONNECT_POLICY=deny)`)
        : refuse(403, 'port', `CONNECT to port ${target.port} refused: tunnels reach only port 443 and the ports of configured registries`);
    }
    if (verdict.decision === 'intercept') return this.#intercept(socket, head, target, log, finish);

    const { authenticator, tunnelClients } = this.#options;
    if (!authenticator && tunnelClients && !tunnelClients.includes(socket.remoteAddress ?? '')) {
      return refuse(403, 'stranger', 'Layover tunnels only for clients in CONNECT_ALLOW_NETWORKS');
    }
    if (authenticator) {
      let user: string | undefined;
      try {
        user = (await authenticator.authenticate(req.headers['proxy-authorization'], signInSource(socket.remoteAddress)))?.user;
      } catch (error) {
        this.#options.logger.warn({ err: error, target: log.target }, 'checking Proxy-Authorization failed');
        return refuse(503, 'auth-unavailable', 'Layover cannot check credentials right now');
      }
      if (!user) {
        const sent = req.headers['proxy-authorization'] !== undefined;
        return refuse(407, sent ? 'auth-rejected' : 'auth-missing', 'Layover tunnels only for authenticated clients: send Proxy-Authorization', {
          'Proxy-Authenticate': PROXY_CHALLENGE,
        });
      }
      log.user = user;
    }
    return this.#tunnel(socket, head, target, refuse, finish);
  }

  async #tunnel(
    socket: Socket,
    head: Buffer,
    target: ConnectTarget,
    refuse: (status: number, reason: string, message: string) => void,
    finish: (fields: Partial<ConnectLog>) => void,
  ): Promise<void> {
    let upstream: Socket;
    try {
      upstream = await dialTarget(target, this.#options.dial);
    } catch (error) {
      if (!(error instanceof DialError)) throw error;
      return refuse(error.status, error.reason, error.message);
    }
    if (socket.destroyed || this.#closing) {
      upstream.destroy();
      return finish({ status: 499, reason: 'client-gone' });
    }
    this.#owned.add(upstream);
    socket.write(CONNECTION_ESTABLISHED);
    if (head.length > 0) socket.unshift(head);
    const { idleMs } = this.#options.timeouts;
    const destroyBoth = (): void => {
      socket.destroy();
      upstream.destroy();
    };
    socket.setTimeout(idleMs, destroyBoth);
    upstream.setTimeout(idleMs, destroyBoth);
    upstream.on('error', destroyBoth);
    socket.on('error', destroyBoth);
    // pipe() ends the other side on 'end' but keeps each direction open until its own end: a
    // client that half-closes still receives the rest, byte for byte.
    socket.pipe(upstream);
    upstream.pipe(socket);
    let open = 2;
    const closed = (): void => {
      // Either side fully closed: nothing more can travel between them.
      destroyBoth();
      if (--open === 0) {
        this.#owned.delete(upstream);
        finish({ status: 200, bytesUp: upstream.bytesWritten, bytesDown: upstream.bytesRead });
      }
    };
    socket.once('close', closed);
    upstream.once('close', closed);
  }

  #intercept(socket: Socket, head: Buffer, target: ConnectTarget, log: ConnectLog, finish: (fields: Partial<ConnectLog>) => void): void {
    const { tlsServer, tls, timeouts } = this.#options;
    // Until its handshake is done, the first connection the proxy listener's caps may shed.
    const connection = trackedConnection(socket);
    connection?.requestEnded();
    connection?.handshakeStarted();
    socket.write(CONNECTION_ESTABLISHED);
    const readBefore = socket.bytesRead - head.length;
    const writtenBefore = socket.bytesWritten;
    // Bytes the client sent right behind the CONNECT head (its ClientHello) go first to TLS.
    if (head.length > 0) socket.unshift(head);
    let refusedSni: string | undefined;
    let failure: string | undefined;
    let secured = false;
    const tlsSocket = new TLSSocket(socket, {
      isServer: true,
      server: tlsServer,
      secureContext: this.#defaultContext,
      // HTTP/1.1 only, as on port 443 by default: blobs run faster over it.
      ALPNProtocols: ['http/1.1'],
      SNICallback: (servername, cb) => {
        if (sniMatches(servername, target)) return tls.SNICallback(servername, cb);
        refusedSni = servername;
        cb(new Error(`SNI ${servername} does not match CONNECT ${formatTarget(target)}`));
      },
    });
    const timer = setTimeout(() => {
      failure = 'handshake-timeout';
      tlsSocket.destroy();
    }, timeouts.handshakeMs);
    tlsSocket.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= refusedSni !== undefined ? 'sni-mismatch' : (error.code ?? 'tls-error');
      tlsSocket.destroy();
    });
    tlsSocket.once('secure', () => {
      secured = true;
      clearTimeout(timer);
      if (tlsSocket.destroyed) return;
      log.sni = tlsSocket.servername || undefined;
      this.#owned.delete(socket);
      this.#handedOver.add(tlsSocket);
      rememberConnectAuthority(tlsSocket, target);
      // Counted once, on the proxy listener; its requests on the TLS listener find it through tlsSocket.
      connection?.secured(tlsSocket);
      tlsServer.emit('secureConnection', tlsSocket);
    });
    tlsSocket.once('close', () => {
      clearTimeout(timer);
      if (failure !== undefined && !secured) this.#options.metrics?.tlsHandshakes.inc({ result: 'failed' });
      this.#handedOver.delete(tlsSocket);
      socket.destroy();
      finish({
        status: 200,
        ...(failure ? { reason: failure } : {}),
        ...(refusedSni !== undefined ? { sni: refusedSni.slice(0, 255) } : {}),
        bytesUp: socket.bytesRead - readBefore,
        bytesDown: socket.bytesWritten - writtenBefore,
      });
    });
  }
}
