import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { cameThroughConnect } from '../connect-proxy/connect-authority.js';
import type { SilentConnections } from '../net/silent-connections.js';
import { trackedConnection } from '../net/tracked-connection.js';
import type { Hit, HitPath } from './hit-path.js';
import { type HitRequestHead, readHitRequestHead } from './hit-request-head.js';

type ConnectionListener = (socket: TLSSocket) => void;

/**
 * Answers hits on a connection before Node's HTTP server takes it. Node's request and response
 * objects, its parser's callbacks and its header writing were a sixth of a cached manifest's CPU
 * (bench/README.md, 2026-12-05, seventh session): here a connection's requests are read off its
 * bytes (readHitRequestHead) and every one the hit path answers (HitPath.hitFor) is written as Node
 * would write it. At the first request that is not, or bytes that are not a plain complete head, the
 * connection goes to Node's HTTP server for good, with the bytes not yet answered: it then reads
 * them as if it had had the connection from the start, with its own limits, timeouts and errors.
 * A connection that came through CONNECT, or while Layover stops, is Node's at once.
 */
export class HitConnections {
  readonly #hitPath: HitPath;
  readonly #silent: SilentConnections | undefined;
  /** Connections still read here, each with what closes it once its answers are flushed. */
  readonly #open = new Map<TLSSocket, () => void>();

  constructor(hitPath: HitPath, silent?: SilentConnections) {
    this.#hitPath = hitPath;
    this.#silent = silent;
  }

  /**
   * Puts itself in front of Node's HTTP server on `server` (an HTTP/1.1 TLS listener): the HTTP
   * server's 'secureConnection' listener, added when the server was made, runs when a connection is
   * handed over; the listeners after it (connection tracking, metrics) still see every connection.
   */
  install(server: Server): void {
    const [httpListener, ...others] = server.listeners('secureConnection') as ConnectionListener[];
    if (!httpListener) throw new Error('hit connections: the server has no connection listener to put them in front of');
    server.removeAllListeners('secureConnection');
    server.on('secureConnection', (socket: TLSSocket) => this.#accept(server, socket, () => httpListener.call(server, socket)));
    for (const listener of others) server.on('secureConnection', listener);
    // server.close() and a stop's closing of idle connections reach Node's connections only: those read here
    // are idle between their data (every answer is written at once), so they close, their answers flushed first.
    const closeIdleConnections = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = () => {
      closeIdleConnections();
      for (const closeAfterFlush of [...this.#open.values()]) closeAfterFlush();
    };
  }

  #accept(server: Server, socket: TLSSocket, httpListener: () => void): void {
    if (cameThroughConnect(socket) || socket.alpnProtocol === 'h2') return httpListener();
    let answered = 0;
    const onData = (data: Buffer): void => {
      let at = 0;
      while (at < data.length) {
        // A client that does not read its answers: Node's server stops reading its requests until they
        // drain. Asked before each request, not each chunk: a chunk of 16 KiB holds a hundred of them,
        // and each answer is a copy of its body (up to 1 MiB), which all stayed in memory.
        if (socket.writableNeedDrain) return handOver(data, at);
        const started = performance.now();
        const head = readHitRequestHead(data, at);
        const request = head && { ...head, socket };
        const hit = request && this.#hitPath.hitFor(request);
        if (!request || !hit) return handOver(data, at);
        if (answered++ === 0) {
          this.#silent?.heard(socket);
          // From now on an idle keep-alive connection, as Node's server would keep it.
          socket.setTimeout(server.keepAliveTimeout);
        }
        this.#write(server, socket, request, hit, started);
        if (request.close) return closeAfterFlush();
        at = request.end;
      }
    };
    const onTimeout = (): void => void socket.destroy();
    // A reset or a failed write: the write's callback logs what it cut short.
    const onError = (): void => void socket.destroy();
    // As Node's server ends a connection: destroyed once its answers are flushed, and meanwhile under the
    // send timeout. end() alone waited for the client's end too, forever for a client that never sends it.
    const closeAfterFlush = (): void => {
      this.#open.delete(socket);
      socket.removeListener('data', onData);
      socket.setTimeout(server.timeout);
      socket.destroySoon();
    };
    const stopReading = (): void => {
      this.#open.delete(socket);
      socket.removeListener('data', onData);
      socket.removeListener('timeout', onTimeout);
      socket.removeListener('close', stopReading);
      socket.setTimeout(0);
    };
    const handOver = (data: Buffer, at: number): void => {
      stopReading();
      socket.removeListener('error', onError); // Node's server listens from now on
      socket.pause();
      if (at < data.length) socket.unshift(at === 0 ? data : data.subarray(at));
      httpListener();
      process.nextTick(() => socket.resume());
    };
    this.#open.set(socket, closeAfterFlush);
    socket.on('data', onData);
    socket.on('timeout', onTimeout);
    socket.on('error', onError);
    socket.on('close', stopReading);
    // A client that connects and says nothing: as long as Node gives it to send a request head.
    // (A socket's timeout is one of inactivity: every read and write restarts it.)
    socket.setTimeout(server.headersTimeout);
  }

  /** Writes the answer as Node's server would for this hit: its head, then its body, in one write. */
  #write(server: Server, socket: TLSSocket, request: HitRequestHead & { socket: TLSSocket }, hit: Hit, started: number): void {
    const requestId = this.#hitPath.nextRequestId();
    const tracked = trackedConnection(socket);
    tracked?.requestStarted();
    const done = (error?: Error | null): void => {
      tracked?.requestEnded();
      this.#hitPath.completed(request, hit, requestId, started, error ?? undefined);
    };
    // The answer's own head (status line and headers) is made once; only the rest is per request.
    const fixed = hit.answer.head;
    const rest = `x-request-id: ${requestId}\r\nDate: ${httpDate()}\r\n${connectionHeaders(server, request.close)}`;
    // One buffer, one TLS write: corking the head and the body into a writev cost more CPU.
    const body = hit.body;
    const answer = Buffer.allocUnsafe(fixed.length + rest.length + (body ? body.length : 0));
    fixed.copy(answer, 0);
    answer.write(rest, fixed.length, 'latin1');
    body?.copy(answer, fixed.length + rest.length);
    socket.write(answer, done);
  }
}

/** The Connection headers and the head's end, as Node's server writes them for this server's keep-alive timeout. */
function connectionHeaders(server: Server, close: boolean): string {
  if (close) return 'Connection: close\r\n\r\n';
  if (server.keepAliveTimeout > 0) return `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(server.keepAliveTimeout / 1000)}\r\n\r\n`;
  return 'Connection: keep-alive\r\n\r\n';
}

let dateSecond = -1;
let dateString = '';
/** The Date header's value, made once a second as Node's server does. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateString = new Date(second * 1000).toUTCString();
  }
  return dateString;
}
