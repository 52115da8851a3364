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
