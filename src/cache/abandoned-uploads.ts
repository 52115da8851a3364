import type { FastifyBaseLogger } from 'fastify';
import type { BlobStore, UnfinishedUpload } from './blob-store.js';
import { fillLeaseName, type Lease, type LeaseStore } from './lease.js';
import { leaseStillHeld } from './lease-holding.js';

/**
 * An upload is looked at only once it is this old. A fill of the fleet holds its digest's lease for
 * as long as it runs, but a replica that fetches alone (its index unreachable at the time, or
 * PEER_ADDRESS=off) holds none: an hour is far longer than any such fill should take, and than the
 * clocks of the store and this replica disagree by.
 */
export const ABANDONED_AFTER_MS = 60 * 60_000;
/**
 * How long a fill lease taken only to abort an upload lasts if this replica dies holding it: a fill of
 * that digest waits for it meanwhile. The abort names one upload id, so a fill begun after the lease ran
 * out has an upload of its own and is not touched.
 */
const FILL_PROBE_TTL_MS = 10_000;
/** What a replica that wants to fill the digest meanwhile learns of the holder (it names no peer to follow). */
const PROBE_NOTE = 'reconcile: aborting an abandoned upload';
/** Each abort needs this much of the reconcile lease left. */
const ABORT_NEEDS_MS = 10_000;

/**
 * Aborts the multipart uploads of replicas killed mid-fill (their parts are billed and never become
 * objects). A fill of the fleet holds its digest's lease for as long as its upload is live, so an upload
 * older than ABANDONED_AFTER_MS whose fill lease this replica can take has nobody behind it (a fill
 * without a lease is long over by then): aborted, then the lease is released. One whose lease is held is
 * left alone. A store that cannot list its uploads (s3rver, some S3-compatibles) leaves them
 * to a bucket lifecycle rule. Called by the holder of the reconcile lease.
 */
export async function abortAbandonedUploads(
  store: BlobStore,
  leases: LeaseStore,
  reconciling: Lease,
  logger: FastifyBaseLogger,
): Promise<{ aborted: number; live: number }> {
  const before = Date.now() - ABANDONED_AFTER_MS;
  const old: UnfinishedUpload[] = [];
  try {
    for await (const upload of store.unfinishedUploads()) if (upload.started <= before) old.push(upload);
  } catch (error) {
    logger.warn({ err: error, store: store.kind }, 'cache reconcile: unfinished uploads cannot be listed; a bucket lifecycle rule must abort them');
    return { aborted: 0, live: 0 };
  }
  let aborted = 0;
  let live = 0;
  for (const upload of old) {
    if (!(await leaseStillHeld(reconciling, ABORT_NEEDS_MS))) break;
    const fill = await leases.acquireLease(fillLeaseName(upload.digest), FILL_PROBE_TTL_MS, { unfenced: true, note: PROBE_NOTE }).catch(() => null);
    if (!fill) {
      live += 1;
      continue;
    }
    try {
      await store.abortUpload(upload);
      aborted += 1;
    } catch (error) {
      logger.warn({ err: error, digest: upload.digest, store: store.kind }, 'cache reconcile: an abandoned upload could not be aborted');
    } finally {
      await fill.release().catch(() => undefined);
    }
  }
  if (aborted > 0) logger.info({ aborted, live }, 'cache reconcile: aborted the uploads of fills nobody runs any more');
  return { aborted, live };
}
