import type { FastifyInstance } from 'fastify';

export interface ServiceRoutesOptions {
  caCertPem: string;
}

/** Routes for operators and node setup, on both listeners: the CA certificate and a health check. */
export async function serviceRoutes(app: FastifyInstance, { caCertPem }: ServiceRoutesOptions): Promise<void> {
  app.get('/ca.crt', async (_request, reply) =>
    reply.header('content-type', 'application/x-x509-ca-cert').header('content-disposition', 'inline; filename="layover-ca.crt"').send(caCertPem),
  );
  app.get('/healthz', async () => ({ status: 'ok' }));
}
