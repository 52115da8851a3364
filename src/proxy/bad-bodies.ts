import { type Fill, FillError } from '../cache/blob-cache.js';
import type { Metrics } from '../metrics/metrics.js';

/** A fill that failed for one of these reasons proved the upstream's bytes wrong for the digest. */
export const BAD_BODY: ReadonlySet<string> = new Set(['digest-mismatch', 'size-mismatch', 'truncated']);

/**
 * A fill dropped for one of these reasons would be dropped again: the cache cannot hold the blob (longer
 * than CACHE_MAX_SIZE, or the disk is full). A client that waited for it to be verified is not sent round
 * for another download.
 */
export const NOT_KEPT: ReadonlySet<string> = new Set(['too-large', 'io-error']);

/**
 * Counts a fill whose bytes did not match their digest as the upstream's error (cause `digest`),
 * once per fill, however many clients follow it. A body cut short is counted where the connection
 * failed, not here.
 */
export function countBadBody(metrics: Metrics | undefined, registry: string, fill: Fill): void {
  if (!metrics) return;
  fill.done.catch((error: unknown) => {
    if (error instanceof FillError && (error.reason === 'digest-mismatch' || error.reason === 'size-mismatch')) metrics.upstreamFailed(registry, 'digest');
  });
}
