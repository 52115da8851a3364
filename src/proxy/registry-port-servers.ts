import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { ConnectionLimits } from '../net/connection-limits.js';
import { answerClientError } from './client-error.js';

/**
 * TLS listeners on the extra ports of registries configured as `host:port`
 * (`registry.example:5000`): clients that were told that port reach Layover on
 * it, and the request (whose Host keeps the port) takes the same routes as on 443.
 */
export class RegistryPortServers {
  readonly #servers: Server[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly tlsOptions: TlsOptions & SecureContextOptions,
    private readonly ports: readonly number[],
    private readonly timeouts: { headersMs: number; keepAliveMs: number; idleMs: number },
    /** The caps of each port's listener (MAX_CONNECTIONS and MAX_CONNECTIONS_PER_CLIENT apply to each). */
    private readonly limitsFor: (port: number) => ConnectionLimits,
  ) {}

  /** Listens on every port at `host`; call after the fastify app is ready (its router is needed). */
  async listen(host: string): Promise<AddressInfo[]> {
    for (const port of this.ports) {
      const server = createServer({ ...this.tlsOptions, ALPNProtocols: ['http/1.1'] }, (req, res) => this.app.routing(req, res));
      server.headersTimeout = this.timeouts.headersMs;
      server.keepAliveTimeout = this.timeouts.keepAliveMs;
      server.timeout = this.timeouts.idleMs;
      server.on('clientError', answerClientError);
      this.limitsFor(port).attach(server, { tls: true });
      this.#servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    }
    return this.#servers.map((server) => server.address() as AddressInfo);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          }),
      ),
    );
  }
}
