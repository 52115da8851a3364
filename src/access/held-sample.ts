import { randomInt } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobCache } from '../cache/blob-cache.js';
import type { Digest } from '../registry/digest.js';
import { BodyDeadlineError, readLimited, WHOLE_BODY_DEADLINE_MS } from '../upstream/read-limited.js';

/**
 * A window of a cached blob's verified bytes at a random offset. An upstream that says it holds a
 * blob it never gave Layover must send these bytes back: knowing a digest is not knowing its bytes.
 */
export interface HeldSample {
  readonly start: number;
  readonly bytes: Buffer;
  /** The whole blob's size. */
  readonly size: number;
}

/** Bytes a sample holds at most: a small request upstream, far too many to guess. */
export const SAMPLE_BYTES = 4096;
/** Windows looked at for one whose bytes are not all alike (a run of zeros in an uncompressed layer is easy to guess). */
const SAMPLE_TRIES = 8;

/** A sample of the cached bytes; or the cache holds no such blob (nor a fill of it); or it could not be read. */
export type HeldBytesSample = { readonly sample: HeldSample } | { readonly absent: true } | { readonly unreadable: Error };

/**
 * A random window of `digest`'s cached bytes (all of a small blob), once they are verified: a fill in
 * progress is waited for. A window whose bytes are all alike is drawn again, a few times.
 */
export async function heldSample(cache: BlobCache, digest: Digest): Promise<HeldBytesSample> {
  let entry = cache.stat(digest);
  if (!entry) entry = await cache.activeFill(digest)?.done.catch(() => undefined);
  if (!entry) return { absent: true };
  const length = Math.min(entry.size, SAMPLE_BYTES);
  if (length === 0) return { sample: { start: 0, bytes: Buffer.alloc(0), size: 0 } };
  let sample: HeldSample | undefined;
  for (let attempt = 0; attempt < SAMPLE_TRIES && (!sample || allAlike(sample.bytes)); attempt++) {
    const start = randomInt(0, entry.size - length + 1);
    const read = cache.read(digest, { start, end: start + length - 1 });
    if (!read) return cache.stat(digest) ? { unreadable: new Error(`the cached ${digest} could not be opened`) } : { absent: true };
    let bytes: Buffer | null;
    try {
      bytes = await readLimited(read.stream, length);
    } catch (error) {
      return { unreadable: error as Error };
    }
    if (bytes?.length !== length) return { unreadable: new Error(`the cached ${digest} is shorter than its record`) };
    sample = { start, bytes, size: entry.size };
  }
  return { sample: sample! };
}

const allAlike = (bytes: Buffer): boolean => bytes.every((byte) => byte === bytes[0]);

/**
 * `Range` asking for the sample: exactly its window, or for all of a blob smaller than a window the
 * window's first SAMPLE_BYTES, so that the request does not tell a registry that only claims the digest
 * how long it is (the answer is the blob, `bytes 0-<size - 1>/<size>`).
 */
export const sampleRange = (sample: HeldSample): string =>
  sample.bytes.length < SAMPLE_BYTES ? `bytes=0-${SAMPLE_BYTES - 1}` : `bytes=${sample.start}-${sample.start + sample.bytes.length - 1}`;

export interface SampledAnswer {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Readable;
}

/**
 * Whether the answer to a GET with sampleRange carries the sample's bytes: a 206 of exactly that
 * range of a blob of the sample's size, or a 200 (Range ignored) of the blob's length whose body has
 * them at that offset.
 * Reads no further than the window's end, and destroys the body after.
 */
export async function showsSample(answer: SampledAnswer, sample: HeldSample, deadlineMs = WHOLE_BODY_DEADLINE_MS): Promise<boolean> {
  const end = sample.start + sample.bytes.length;
  // A body dripped slower than the read timeout's silence would hold the client waiting for this answer.
  const timer = setTimeout(() => answer.body.destroy(new BodyDeadlineError(deadlineMs)), deadlineMs);
  try {
    if (answer.statusCode === 206) {
      if (String(answer.headers['content-range']) !== `bytes ${sample.start}-${end - 1}/${sample.size}`) return false;
      const bytes = await readLimited(answer.body, sample.bytes.length);
      return bytes !== null && bytes.equals(sample.bytes);
    }
    // A whole body only with the blob's length: filler of any length followed by guessed bytes is no proof.
    if (answer.statusCode !== 200 || Number(answer.headers['content-length']) !== sample.size) return false;
    let position = 0;
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      const from = Math.max(sample.start, position);
      const to = Math.min(end, position + chunk.length);
      if (from < to && !chunk.subarray(from - position, to - position).equals(sample.bytes.subarray(from - sample.start, to - sample.start))) return false;
      position += chunk.length;
      if (position >= end) return true;
    }
    return false;
  } finally {
    clearTimeout(timer);
    // Whatever is left is not read: an undici body reports being cut off as an error, expected here.
    answer.body.on('error', () => undefined).destroy();
  }
}
