import type { Readable } from 'node:stream';

/**
 * How long a body read whole (a manifest, a tag list, an error) may take from its first byte to its
 * last. The upstream's read timeout measures only the silence between chunks: a body dripped a byte a
 * minute held its buffer (up to a manifest's 4 MiB) for as long as the upstream liked.
 */
export const WHOLE_BODY_DEADLINE_MS = 120_000;

/**
 * A body read whole that did not end by its deadline: 504 to a client (src/proxy/error-handler.ts).
 * A plain Error: the cache's modules import this one, and they run in child processes that strip
 * TypeScript only (OciError's parameter properties are not strippable).
 */
export class BodyDeadlineError extends Error {
  override readonly name = 'BodyDeadlineError';
  readonly status = 504;

  constructor(deadlineMs: number) {
    super(`the upstream's answer did not arrive within ${deadlineMs / 1000} s`);
  }
}

/**
 * The whole stream if it is at most `limit` bytes; null (and the stream destroyed) if it is larger.
 * With `deadlineMs`, a stream not ended by then is destroyed and the read rejects with BodyDeadlineError.
 */
export async function readLimited(stream: Readable, limit: number, deadlineMs?: number): Promise<Buffer | null> {
  const timer = deadlineMs === undefined ? undefined : setTimeout(() => stream.destroy(new BodyDeadlineError(deadlineMs)), deadlineMs);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (total > limit) {
        stream.destroy();
        return null;
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, total);
  } finally {
    clearTimeout(timer);
  }
}

/** How much of a body Layover drops is still read, so that its connection can carry the next request. */
export const DISCARD_LIMIT_BYTES = 64 * 1024;

/**
 * Drops an upstream body nobody reads (a refusal, a redirect, an error answered otherwise). A short
 * one is read to its end and its connection kept; one longer than `limit`, or not ended by the deadline
 * of bodies read whole, is destroyed: drained, an endless body went on downloading in the background.
 */
export function discardBody(stream: Readable, limit = DISCARD_LIMIT_BYTES): void {
  let read = 0;
  const timer = setTimeout(() => stream.destroy(), WHOLE_BODY_DEADLINE_MS);
  timer.unref();
  const stop = (): void => clearTimeout(timer);
  stream.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > limit) stream.destroy();
  });
  // Cut off on purpose: the error that reports it is expected.
  stream.on('error', stop).once('close', stop);
  stream.resume();
}
