import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { IO_CHUNK } from './durable-files.js';
import { countedSend, type Destination, drained, giveBack, sendsPooled, takeSendBuffer } from './send-buffers.js';

/**
 * Piped into a response, a follower sends at least this much per write once its first bytes are out,
 * waiting up to GATHER_MS for it: an upstream's body comes in 16 KiB TLS records, and a write per record
 * cost more CPU than the whole rest of a miss (each is a TLS record, a system call and stream work of
 * its own). The first write never waits, so the first byte leaves as soon as it came.
 */
const GATHER_BYTES = 256 * 1024;
const GATHER_MS = 2;

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
  /** Copies bytes from `position` (below `readableBytes`) into `target`; returns how many (at least one). */
  readInto(position: number, target: Buffer): Promise<number>;
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
 *
 * Piped into an HTTP/1 response (fastify sends a stream with `pipe`), it writes itself: the bytes
 * available are copied into a pooled buffer (see send-buffers.ts), gathered to GATHER_BYTES, and the
 * buffer is taken back at its write's callback; with nothing to send yet, the response's headers go at
 * once. Read any other way, every chunk is pushed as it is read.
 */
export class FillReader extends Readable {
  private readonly fill: FillSource;
  private position: number;
  /** Exclusive; Infinity when the reader wants everything up to the end of the blob. */
  private readonly end: number;
  private pumping = false;
  private sending = false;

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

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.pumping || this.sending || !sendsPooled(this, destination)) return super.pipe(destination, options);
    this.sending = true;
    destination.emit('pipe', this);
    countedSend(() => this.send(destination, options?.end !== false)).catch((error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))));
    return destination;
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

  /** The bytes a write may take now: like `pump`, the last byte of the range waits for verification. */
  private limit(): number {
    return Math.min(this.fill.verified ? this.end : this.end - 1, this.fill.readableBytes);
  }

  private async send(destination: ServerResponse, end: boolean): Promise<void> {
    // Nothing to send yet (a miss whose upstream has sent only its headers): the client gets its
    // headers now rather than with the first bytes; from here on a failure cuts the connection.
    if (!destination.destroyed && !this.fill.failure && this.position < this.end && this.position >= this.limit()) destination.flushHeaders();
    let first = true;
    for (;;) {
      if (this.destroyed || destination.destroyed) return;
      const failure = this.fill.failure;
      if (failure) return void this.destroy(failure);
      if (this.position >= this.end) break;
      if (this.position >= this.limit()) {
        if (this.fill.verified) break;
        await this.fill.waitForProgress();
        continue;
      }
      const buffer = takeSendBuffer();
      let filled = 0;
      try {
        // With many downloads at once the buffers are smaller than GATHER_BYTES: a full one is enough.
        if (!first) await this.gather(Math.min(GATHER_BYTES, buffer.length));
        // Re-read after the wait: more may have come, or the fill failed (then nothing more is sent).
        const want = this.fill.failure ? 0 : Math.min(buffer.length, this.limit() - this.position);
        while (filled < want) filled += await this.fill.readInto(this.position + filled, buffer.subarray(filled, want));
      } catch (error) {
        giveBack(buffer);
        throw error;
      }
      if (this.destroyed || destination.destroyed || filled === 0) {
        giveBack(buffer);
        continue;
      }
      this.position += filled;
      this.fill.advanced();
      first = false;
      if (!destination.write(buffer.subarray(0, filled), () => giveBack(buffer))) await drained(destination);
    }
    if (end) destination.end();
    // Ends this stream the way reading it to the end would: `end`, then `close` (which releases the fill).
    this.push(null);
    this.resume();
  }

  /** Waits until `bytes` can be sent, or GATHER_MS passed, or the fill is verified or failed. */
  private async gather(bytes: number): Promise<void> {
    const enough = (): boolean => this.destroyed || this.fill.failure !== undefined || this.fill.verified || this.limit() - this.position >= bytes;
    if (enough()) return;
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        late = true;
        resolve();
      }, GATHER_MS);
    });
    try {
      while (!late && !enough()) await Promise.race([this.fill.waitForProgress(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
