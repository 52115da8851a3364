import type { Metrics } from '../metrics/metrics.js';
import type { DockerHubBudget } from '../upstream/docker-hub-budget.js';
import type { ReadAccess } from '../access/read-access.js';
import type { ClientAuth } from '../client-auth/create-client-auth.js';
import type { BlobCache } from '../cache/blob-cache.js';
import type { LayoverConfig } from '../config/layover-config.js';
import type { HostnameSet } from '../registry/hostname.js';
import type { UpstreamAuth } from '../upstream/auth/upstream-auth.js';
import type { Fleet } from '../peers/fleet.js';
import type { PendingFills } from './pending-fills.js';

/** What every proxy route needs. */
export interface ProxyContext {
  readonly config: LayoverConfig;
  readonly cache: BlobCache;
  readonly intercepted: HostnameSet;
  readonly pendingFills: PendingFills;
  /** Upstream credentials: pass `upstreamAuth.for(repository)` as forwardUpstream's `auth`. */
  readonly upstreamAuth: UpstreamAuth;
  /** Client authentication and access policy; absent or null when every client is let in (CLIENT_AUTH=none). */
  readonly clientAuth?: ClientAuth | null;
  /** Replicas of a shared index: who fetches which digest, and how to follow another replica's fill; absent or null alone. */
  readonly fleet?: Fleet | null;
  /** Prometheus series (src/metrics/); absent in tests that do not count. */
  readonly metrics?: Metrics;
  /** Docker Hub's pull budget, read from its answers; absent in tests that do not watch it. */
  readonly dockerHubBudget?: DockerHubBudget;
}

/** The registry routes' context: also who may read what the cache holds. */
export interface RegistryProxyContext extends ProxyContext {
  readonly readAccess: ReadAccess;
}
