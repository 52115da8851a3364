/**
 * The part buffers of S3 uploads are bounded for the whole process (PART_BUFFERS), not per fill: many
 * concurrent fills wait for room at the start of a part instead of each holding two parts, none of
 * them deadlocks the others or is cut off as a stall for it, and every blob is committed whole and correct. The bytes held are read
 * from the budget's own counter (not a timing). s3rver (see s3rver-fixture.ts) is the bucket.
 */
import { describe, expect, it } from 'vitest';
import { PART_BUFFERS } from '../../../src/cache/blob-stores/s3-upload.js';
import { blob, collect, handSource, meta, MiB, openCache, tally } from './cache-fixture.js';
import { startS3rver, useS3rverCredentials } from './s3rver-fixture.js';

const FILLS = 12;

describe('S3 part buffers', () => {
  it(`stay within the process's budget across ${FILLS} concurrent fills, and every blob commits correct`, async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    // A stall timeout far below the waits for room: waiting for the store is not the upstream's silence.
    const { cache } = await openCache({ blobStore: s3.config(), stallTimeoutMs: 1_000 });
    const budgetBytes = PART_BUFFERS.parts * PART_BUFFERS.partSize;
    // Unbounded, each fill would hold a part being sent and one being gathered: twice the budget and more.
    expect(FILLS * 2 * PART_BUFFERS.partSize).toBeGreaterThan(budgetBytes);
    PART_BUFFERS.resetPeak();
    let mostWaiting = 0;
    const watch = setInterval(() => (mostWaiting = Math.max(mostWaiting, PART_BUFFERS.usage.waiting)), 5);
    try {
      const blobs = Array.from({ length: FILLS }, () => blob(17 * MiB + 5));
      const fills = blobs.map(({ bytes, digest }) => {
        const source = handSource();
        const fill = cache.fill(digest, source, meta({ size: bytes.length }));
        const reader = tally(fill.reader());
        source.end(bytes);
        return { fill, reader };
      });
      const entries = await Promise.all(fills.map(({ fill }) => fill.done));
      expect(entries.map((e) => e.digest)).toEqual(blobs.map((b) => b.digest));
      for (const [i, { reader }] of fills.entries()) expect((await reader.ended).equals(blobs[i]!.bytes)).toBe(true);
      expect((await s3.objects()).sort()).toEqual(blobs.map((b) => `cache/blobs/sha256/${b.digest.slice(7)}`).sort());
      expect(await s3.openUploads()).toEqual([]);
      for (const { bytes, digest } of blobs) expect((await collect(cache.read(digest)!.stream)).equals(bytes)).toBe(true);
    } finally {
      clearInterval(watch);
    }
    const usage = PART_BUFFERS.usage;
    expect(usage.peakBytes).toBeGreaterThan(0);
    expect(usage.peakBytes).toBeLessThanOrEqual(budgetBytes);
    // Fills did wait for room (the budget was the limit, not the test's pace), and all room came back.
    expect(mostWaiting).toBeGreaterThan(0);
    expect(usage).toMatchObject({ bufferedBytes: 0, partsTaken: 0, waiting: 0 });
  }, 180_000);
});
