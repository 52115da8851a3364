import type { Server } from 'node:net';
import type { Socket } from 'node:net';

/**
 * Connections that have not sent a request yet, per listener. Browsers open such connections ahead
 * of need (preconnect), and a stop waited for them: server.close() closes idle keep-alive
 * connections, but not one that never carried a request, so the stop ran into SHUTDOWN_GRACE
 * (until CLIENT_HEADER_TIMEOUT ended them) and exited without closing the cache in order.
 */
export class SilentConnections {
  readonly #silent = new Set<Socket>();

  /** `tls`: count a connection from its completed handshake (before it, the handshake deadline ends it). */
  attach(server: Server, { tls }: { tls: boolean }): void {
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.#silent.add(socket);
      socket.once('close', () => this.#silent.delete(socket));
    });
    server.on('request', (request: { socket: Socket }) => this.#silent.delete(request.socket));
  }

  /** `socket` sent a request that its server's 'request' event did not see (src/proxy/hit-connections.ts). */
  heard(socket: Socket): void {
    this.#silent.delete(socket);
  }

  /** Ends every connection that has not sent a request; those serving one are left to finish. */
  closeAll(): void {
    for (const socket of this.#silent) socket.destroy();
    this.#silent.clear();
  }
}
