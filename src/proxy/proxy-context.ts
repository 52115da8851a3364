import type { BlobCache } from '../cache/blob-cache.js';
import type { LayoverConfig } from '../config/layover-config.js';
import type { HostnameSet } from '../registry/hostname.js';
import type { UpstreamAuth } from '../upstream/auth/upstream-auth.js';
import type { PendingFills } from './pending-fills.js';

/** What every proxy route needs. */
export interface ProxyContext {
  readonly config: LayoverConfig;
  readonly cache: BlobCache;
  readonly intercepted: HostnameSet;
  readonly pendingFills: PendingFills;
  /** Upstream credentials: pass `upstreamAuth.for(repository)` as forwardUpstream's `auth`. */
  readonly upstreamAuth: UpstreamAuth;
}
