import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';

/** POST /admin/prefetch: pulls image references into the cache, reporting progress as a stream. */
export async function prefetchRoutes(_app: FastifyInstance, _context: OperationsContext): Promise<void> {}
