import { randomBytes } from 'node:crypto';

/**
 * Request IDs for every listener of a process from one sequence, behind a prefix drawn at start:
 * fastify's default (`req-1` on each listener) repeats across listeners, restarts and replicas,
 * so a line could not be matched to its request in a fleet's collected logs.
 */
export function requestIdGenerator(): () => string {
  const prefix = randomBytes(4).toString('hex');
  let next = 0;
  return () => `${prefix}-${(next++).toString(36)}`;
}
