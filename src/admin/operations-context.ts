import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { BlobCache } from '../cache/blob-cache.js';
import type { LayoverConfig } from '../config/layover-config.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Fleet } from '../peers/fleet.js';
import type { DockerHubBudget } from '../upstream/docker-hub-budget.js';
import type { AdminAccess } from './admin-access.js';

/** What the operations routes (/metrics, the status page, the admin API, prefetch) work with. */
export interface OperationsContext {
  readonly config: LayoverConfig;
  readonly cache: BlobCache;
  readonly metrics: Metrics;
  /** Who may see and operate: `access.guard('api' | 'view')` as a preHandler. */
  readonly access: AdminAccess;
  readonly dockerHubBudget: DockerHubBudget;
  /** Replicas of a shared index; null alone. */
  readonly fleet: Fleet | null;
  /** The TLS listener's app: pulls made by Layover itself (prefetch) go through it in process, as a client's would. */
  readonly https: FastifyInstance;
  readonly logger: FastifyBaseLogger;
}
