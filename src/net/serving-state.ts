import type { Http2SecureServer, ServerHttp2Session } from 'node:http2';

/** Where the process is in its life, as /readyz reports it. */
export type ServingPhase = 'starting' | 'ready' | 'stopping';

/**
 * Readiness as load balancers and kube-proxy see it: ready once every listener is up (the cache is
 * opened before any of them), not ready from the moment a stop begins. Liveness is not kept here:
 * a process whose event loop answers /livez is alive, stopping or not.
 *
 * While stopping, every HTTP/1.1 response carries `Connection: close` (src/app.ts) and every HTTP/2
 * session gets a GOAWAY: a client whose connection still reaches this replica gets its answer, then
 * opens its next connection through the load balancer to a replica that stays.
 */
export class ServingState {
  #phase: ServingPhase = 'starting';
  /** Open HTTP/2 sessions, told to go (GOAWAY) when the stop begins. */
  readonly #sessions = new Set<ServerHttp2Session>();

  get phase(): ServingPhase {
    return this.#phase;
  }

  get ready(): boolean {
    return this.#phase === 'ready';
  }

  get stopping(): boolean {
    return this.#phase === 'stopping';
  }

  /** Every listener is up. A stop that began during the start stays a stop. */
  listening(): void {
    if (this.#phase === 'starting') this.#phase = 'ready';
  }

  /**
   * Not ready from now on. Every open HTTP/2 session gets a GOAWAY, HTTP/2's Connection: close: its
   * streams in flight finish, the client sends its next requests on a new connection.
   */
  stop(): void {
    this.#phase = 'stopping';
    for (const session of this.#sessions) session.close();
  }

  /**
   * Follows the HTTP/2 sessions of `server`. One that opens during the drain is served like a new
   * HTTP/1.1 connection then; the listener's close at the end of the drain sends it its GOAWAY.
   */
  trackSessions(server: Http2SecureServer): void {
    server.on('session', (session: ServerHttp2Session) => {
      if (this.stopping) return;
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
    });
  }
}
