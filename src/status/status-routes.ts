import type { FastifyInstance } from 'fastify';
import type { OperationsContext } from '../admin/operations-context.js';

/** The status page at `/`. */
export async function statusRoutes(_app: FastifyInstance, _context: OperationsContext & { hosts?: RegExp }): Promise<void> {}
