import { close, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import { SHORT_BLOB } from '../blob-store.js';
import { IO_CHUNK } from '../durable-files.js';
import { chunksInFlightFor, countedSend, type Destination, downloadsSending, giveBack, sendsPooled, takeSendBuffer, WriteWindow } from '../send-buffers.js';

/**
 * A piped send's first chunk: TLS encrypts a write whole before the first byte of it leaves, and a
 * first chunk of 1 MiB kept a hit's first byte waiting for that (about 1.5 ms here).
 */
export const FIRST_CHUNK = 64 * 1024;

/**
 * A committed blob file's bytes from `start` to `end` (inclusive), like `fs.createReadStream` with
 * 1 MiB chunks (`pending` until opened, then `open` and `ready`), with one difference on the hit path:
 * piped into an HTTP/1 response (fastify sends a stream with `pipe`), it writes each chunk itself and
 * takes the chunk's buffer back from `write`'s callback, when the socket no longer holds it, to read
 * the next chunk into; the following chunk is read while one is being written (a download alone
 * writes it before the one before has gone out: chunksInFlightFor), and the first is FIRST_CHUNK at
 * most. Read any other way (`data`, async iteration, several destinations) every chunk
 * is a buffer of its own, as before. A file shorter than the range is an error, never a short answer.
 */
export class FileReadStream extends Readable {
  pending = true;
  fd: number | null = null;
  private readonly path: string;
  private position: number;
  private readonly last: number;
  /** The read in flight: the descriptor is closed only after it returns. */
  private reading: Promise<unknown> = Promise.resolve();
  private pumping = false;

  constructor(path: string, start: number, end: number) {
    super({ highWaterMark: IO_CHUNK });
    this.path = path;
    this.position = start;
    this.last = end;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, 'r', (error, fd) => {
      if (error) return callback(error);
      this.fd = fd;
      this.pending = false;
      callback();
      this.emit('open', fd);
      this.emit('ready');
    });
  }

  override _read(): void {
    if (this.position > this.last) return void this.push(null);
    void this.readChunk(Buffer.allocUnsafe(Math.min(IO_CHUNK, this.last - this.position + 1)))
      .then((chunk) => {
        if (!this.destroyed) this.push(chunk);
      })
      .catch((error: unknown) => this.destroy(error as Error));
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.pumping || !sendsPooled(this, destination)) return super.pipe(destination, options);
    this.pumping = true;
    destination.emit('pipe', this);
    this.pump(destination, options?.end !== false).catch((error: unknown) => this.destroy(error as Error));
    return destination;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = null;
    if (fd === null) return callback(error);
    void this.reading.finally(() => close(fd, (closeError) => callback(error ?? closeError)));
  }

  private pump(destination: Destination, end: boolean): Promise<void> {
    return countedSend(() => this.send(destination, end));
  }

  private async send(destination: Destination, end: boolean): Promise<void> {
    if (this.pending && !(await this.opened())) return;
    const writes = new WriteWindow(destination);
    let next = this.readAhead(FIRST_CHUNK);
    try {
      while (next) {
        const { buffer, chunk } = await next;
        next = this.readAhead();
        if (this.destroyed || destination.destroyed) {
          giveBack(buffer);
          // Its failure is nobody's to hear any more: unhandled, it would end the process.
          next?.then(({ buffer: unused }) => giveBack(unused), () => undefined);
          return;
        }
        writes.write(chunk, () => giveBack(buffer));
        // A while: more downloads may have started since (their limit is lower).
        while (next && !writes.gone && writes.unconfirmed >= chunksInFlightFor(downloadsSending())) await writes.change();
      }
    } finally {
      writes.dispose();
    }
    if (this.destroyed) return;
    if (end) destination.end();
    // Ends this stream the way reading it to the end would: `end`, then `close`.
    this.push(null);
    this.resume();
  }

  /** The next chunk's read (`limit` bytes at most), started now so that it overlaps the write of the one before; null past the end. */
  private readAhead(limit = Number.POSITIVE_INFINITY): Promise<{ buffer: Buffer; chunk: Buffer }> | null {
    if (this.position > this.last || this.destroyed) return null;
    const next = this.readPooled(limit);
    // Awaited by the loop, or dropped with the stream: either way no unhandled rejection.
    next.catch(() => undefined);
    return next;
  }

  private async readPooled(limit: number): Promise<{ buffer: Buffer; chunk: Buffer }> {
    const buffer = takeSendBuffer();
    try {
      return { buffer, chunk: await this.readChunk(buffer.subarray(0, Math.min(buffer.length, limit, this.last - this.position + 1))) };
    } catch (error) {
      giveBack(buffer);
      throw error;
    }
  }

  /** Fills `into` from the current position (a short read is followed up), or fails when the file ends first. */
  private readChunk(into: Buffer): Promise<Buffer> {
    const start = this.position;
    this.position += into.length;
    const done = this.readFully(into, start);
    this.reading = done.catch(() => undefined);
    return done;
  }

  private async readFully(into: Buffer, start: number): Promise<Buffer> {
    let filled = 0;
    while (filled < into.length) {
      const fd = this.fd;
      if (fd === null) throw new Error(`${this.path}: read after close`);
      const count = await new Promise<number>((resolve, reject) => read(fd, into, filled, into.length - filled, start + filled, (error, bytes) => (error ? reject(error) : resolve(bytes))));
      if (count === 0) throw Object.assign(new Error(`${this.path} ends at byte ${start + filled}, before the ${this.last + 1} bytes it should hold`), { code: SHORT_BLOB });
      filled += count;
    }
    return into;
  }

  private opened(): Promise<boolean> {
    return new Promise((resolve) => {
      const ready = (): void => {
        this.off('close', closed);
        resolve(true);
      };
      const closed = (): void => {
        this.off('ready', ready);
        resolve(false);
      };
      this.once('ready', ready).once('close', closed);
    });
  }
}
