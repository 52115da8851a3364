import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from './operations-context.js';

/** The admin API under /admin/ (list, purge, pin). */
export async function adminRoutes(_app: FastifyInstance, _context: OperationsContext): Promise<void> {}
