import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';

/** GET /metrics: the Prometheus text exposition; behind admin credentials when client authentication is on. */
export async function metricsRoute(app: FastifyInstance, { metrics, access }: OperationsContext): Promise<void> {
  app.get('/metrics', { preHandler: access.guard('view') }, async (_request, reply) => {
    const { contentType, body } = await metrics.exposition();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
