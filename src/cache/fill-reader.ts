import { Readable } from 'node:stream';
import { IO_CHUNK } from './durable-files.js';

/** What a reader needs from a fill in progress (implemented by BlobFill). */
export interface FillSource {
  /** Bytes a reader may emit now: what the fill holds, minus the final byte until the digest is verified. */
  readonly readableBytes: number;
  /** True once the digest matched: `readableBytes` is then the whole blob. */
  readonly verified: boolean;
  /** Set when the fill failed before verification; readers must then fail too. */
  readonly failure: Error | undefined;
  /** Up to `length` bytes from `position` (below `readableBytes`): from the temp file, or from memory once it failed. */
  read(position: number, length: number): Promise<Buffer>;
  /** Resolves at the next write, verification or failure (no polling). */
  waitForProgress(): Promise<void>;
  /** The reader took bytes: memory held for it may be let go, a source held back for it may go on. */
  advanced(): void;
  /** The reader is closed: it no longer holds the shared file handle (it closes after the last one) or any memory. */
  release(reader: FillReader): void;
}

/**
 * Follows a growing temp file: reads what is already written (1 MiB at a time), then sleeps until the
 * fill reports progress. Reading from the fill's own handle rather than the path keeps working after
 * the file is renamed into place (or unlinked on failure), so no reader ever races the commit. If the
 * file fails, the fill hands out the rest from memory; the reader does not notice.
 */
export class FillReader extends Readable {
  private readonly fill: FillSource;
  private position: number;
  /** Exclusive; Infinity when the reader wants everything up to the end of the blob. */
  private readonly end: number;
  private pumping = false;

  constructor(fill: FillSource, start: number, endInclusive: number) {
    super({ highWaterMark: IO_CHUNK });
    this.fill = fill;
    this.position = start;
    this.end = endInclusive + 1;
  }

  /** The next byte this reader will ask for; Infinity once it wants none. */
  get need(): number {
    return this.position < this.end && !this.destroyed ? this.position : Number.POSITIVE_INFINITY;
  }

  override _read(): void {
    // One loop at a time; a pending wait or read resumes it, so extra calls have nothing to do.
    if (!this.pumping) void this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.fill.release(this);
    callback(error);
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        if (this.destroyed) return;
        const failure = this.fill.failure;
        if (failure) {
          this.destroy(failure);
          return;
        }
        if (this.position >= this.end) {
          this.push(null);
          return;
        }
        const verified = this.fill.verified;
        // Like the blob's final byte, a range's own last byte waits for verification: no reader
        // completes with bytes a digest mismatch could still prove wrong.
        const limit = Math.min(verified ? this.end : this.end - 1, this.fill.readableBytes);
        if (this.position < limit) {
          const chunk = await this.fill.read(this.position, Math.min(IO_CHUNK, limit - this.position));
          if (this.destroyed) return;
          if (chunk.length === 0) throw new Error('the temp file is shorter than the bytes written to it');
          this.position += chunk.length;
          this.fill.advanced();
          if (!this.push(chunk)) return;
          continue;
        }
        if (verified) {
          this.push(null);
          return;
        }
        await this.fill.waitForProgress();
      }
    } catch (error) {
      this.destroy(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.pumping = false;
    }
  }
}
