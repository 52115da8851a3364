import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';
import { HostnameSet } from '../registry/hostname.js';

/** GET /metrics: the Prometheus text exposition; behind admin credentials when client authentication is on. */
export async function metricsRoute(app: FastifyInstance, { metrics, access, cache, config }: OperationsContext): Promise<void> {
  // A wildcard of REGISTRIES lets clients name registries freely: they are exported under the wildcard.
  metrics.useRegistries(new HostnameSet(config.registries));
  // The cache's size, cap, fills and waiters are read at each scrape, never pushed on every change.
  metrics.watchCache(cache);
  app.get('/metrics', { preHandler: access.guard('view') }, async (_request, reply) => {
    const { contentType, body } = await metrics.exposition();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
