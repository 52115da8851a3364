/**
 * The stall timer (PROXY_READ_TIMEOUT) measures the upstream: a bucket slower than it per part must not
 * kill a healthy fill as a "stall", an upstream that goes silent still ends the fill, and a bucket that
 * takes nothing at all is given up within the fill's own bound for the store (the readers still get the
 * blob, the cache does not). s3rver behind a slowing TCP relay (see slow-s3-relay.ts) plays the bucket.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobFill } from '../../../src/cache/blob-fill.js';
import { createBlobStore } from '../../../src/cache/blob-stores/create-blob-store.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, handSource, meta, MiB, openCache, tally, tempDir } from './cache-fixture.js';
import { startS3rver, useS3rverCredentials } from './s3rver-fixture.js';
import { startSlowS3Relay } from './slow-s3-relay.js';

/** Each chunk to the bucket waits this long: an 8 MiB part takes well over a second. */
const RELAY_DELAY_MS = 15;
const STALL_TIMEOUT_MS = 300;

async function slowBucket() {
  useS3rverCredentials();
  const s3 = await startS3rver();
  const relay = await startSlowS3Relay(s3, RELAY_DELAY_MS);
  return { s3, relay };
}

describe('a fill over a slow bucket', () => {
  it('commits although each part takes longer than the stall timeout', async () => {
    const { s3, relay } = await slowBucket();
    const { cache } = await openCache({ blobStore: relay.config(), stallTimeoutMs: STALL_TIMEOUT_MS });
    const { bytes, digest } = blob(17 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.end(bytes);
    await expect(fill.done).resolves.toMatchObject({ digest, size: bytes.length });
    expect((await reader.ended).equals(bytes)).toBe(true);
    expect(await s3.objects()).toEqual([`cache/blobs/sha256/${digest.slice(7)}`]);
  }, 120_000);

  it('still ends as a stall when the upstream goes silent', async () => {
    const { s3, relay } = await slowBucket();
    const { cache } = await openCache({ blobStore: relay.config(), stallTimeoutMs: STALL_TIMEOUT_MS });
    const { bytes, digest } = blob(17 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    source.write(bytes.subarray(0, 9 * MiB));
    await expect(fill.done).rejects.toMatchObject({ reason: 'stall' });
    expect(source.destroyed).toBe(true);
    expect(await s3.objects()).toEqual([]);
  }, 120_000);

  it('goes on without a bucket that takes nothing, within its own bound: readers get the blob, the cache does not', async () => {
    const { s3, relay } = await slowBucket();
    relay.freeze();
    const dir = await tempDir();
    const layout = new CacheLayout(join(dir, 'cache'));
    const store = await createBlobStore(relay.config(), layout);
    const storeTimeoutMs = 500;
    const { logger, lines } = captureLogger();
    const committed: BlobEntry[] = [];
    const { bytes, digest } = blob(17 * MiB);
    const source = handSource();
    const fill = new BlobFill(digest, source, meta({ size: bytes.length }), join(dir, 'spool'), {
      logger,
      // Far above the bound for the store: if the store's wait counted as silence, this would not end it.
      stallTimeoutMs: 60_000,
      storeTimeoutMs,
      maxBytes: 1024 * MiB,
      relayWindowBytes: 16 * MiB,
      beginUpload: (d, spool, m) => store.beginUpload(d, spool, m),
      commit: async (_fill, upload, size) => {
        await upload.commit(size);
        const entry: BlobEntry = { digest, size, mediaType: null, kind: 'blob', created: 0, lastAccess: 0, source: 'test' };
        committed.push(entry);
        return entry;
      },
      abandon: () => undefined,
      readCommitted: () => undefined,
    });
    const reader = tally(fill.reader());
    source.end(bytes);
    // A hang guard of many times the bound, not a timing: the point is that the wait ends at all.
    let guard: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      fill.done.then(() => 'committed').catch((error: { reason?: string }) => error.reason),
      new Promise((resolve) => (guard = setTimeout(() => resolve('still waiting'), 40 * storeTimeoutMs))),
    ]);
    clearTimeout(guard);
    expect(outcome).toBe('io-error');
    expect((await reader.ended).equals(bytes)).toBe(true);
    expect(committed).toEqual([]);
    expect(lines.some((line) => line.msg.includes('the blob store takes nothing'))).toBe(true);
    relay.thaw();
    await store.close();
    expect(await s3.objects()).toEqual([]);
  }, 120_000);
});
