import type { FastifyInstance } from 'fastify';

export interface ServiceRoutesOptions {
  caCertPem: string;
  /** On the TLS listener, only for docker.proxy and bare addresses: every other name belongs to its registry. */
  hosts?: RegExp;
}

/** docker.proxy, localhost or an IP literal, with an optional port. */
export const SERVICE_HOSTS = /^(docker\.proxy|localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])(:\d+)?$/i;

/** Routes for operators and node setup, on both listeners: the CA certificate and a health check. */
export async function serviceRoutes(app: FastifyInstance, { caCertPem, hosts }: ServiceRoutesOptions): Promise<void> {
  const options = hosts ? { constraints: { host: hosts } } : {};
  app.get('/ca.crt', options, async (_request, reply) =>
    reply.header('content-type', 'application/x-x509-ca-cert').header('content-disposition', 'inline; filename="layover-ca.crt"').send(caCertPem),
  );
  app.get('/healthz', options, async () => ({ status: 'ok' }));
}
