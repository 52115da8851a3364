import type { FastifyInstance } from 'fastify';
import { setupRoutes, type SetupRoutesOptions } from '../setup/setup-routes.js';

export interface ServiceRoutesOptions {
  caCertPem: string;
  /** On the TLS listener, only for docker.proxy and bare addresses: every other name belongs to its registry. */
  hosts?: RegExp;
  /** The /setup/* scripts; left out, there are none. */
  setup?: Omit<SetupRoutesOptions, 'caCertPem' | 'constraints'>;
}

/** docker.proxy, localhost or an IP literal, with an optional port. */
export const SERVICE_HOSTS = /^(docker\.proxy|localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])(:\d+)?$/i;

/** Routes for operators and node setup, on every listener: the CA certificate, a health check and the setup scripts. */
export async function serviceRoutes(app: FastifyInstance, { caCertPem, hosts, setup }: ServiceRoutesOptions): Promise<void> {
  const options = hosts ? { constraints: { host: hosts } } : {};
  app.get('/ca.crt', options, async (_request, reply) =>
    reply.header('content-type', 'application/x-x509-ca-cert').header('content-disposition', 'inline; filename="layover-ca.crt"').send(caCertPem),
  );
  app.get('/healthz', options, async () => ({ status: 'ok' }));
  if (setup) await setupRoutes(app, { ...setup, caCertPem, ...options });
}
