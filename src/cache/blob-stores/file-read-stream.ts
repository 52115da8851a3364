import { close, open, read } from 'node:fs';
import { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { BufferPool } from '../buffer-pool.js';
import { IO_CHUNK } from '../durable-files.js';

/**
 * Buffers of hits being sent, for the whole process: two per download (one being written, one being
 * read). Up to 24 downloads read 1 MiB at a time (fewer system calls per byte); beyond that the chunks
 * shrink so that up to 384 downloads at once hold no more than 24 do (each buffer also costs its
 * encrypted copy in the TLS socket until the kernel takes it). Past 384 it grows by 128 KiB a download.
 */
const READ_BUDGET_BYTES = 48 * IO_CHUNK;
const MIN_CHUNK = 64 * 1024;
const pools = [IO_CHUNK, 256 * 1024, MIN_CHUNK].map((size) => new BufferPool(size, READ_BUDGET_BYTES / size / 4));
let sending = 0;

/** The chunk size that keeps `downloads` downloads' two buffers each within the budget (64 KiB at least). */
export function chunkBytesFor(downloads: number): number {
  return (pools.find((pool) => downloads * 2 * pool.bufferSize <= READ_BUDGET_BYTES) ?? pools[pools.length - 1]!).bufferSize;
}

function poolNow(): BufferPool {
  const size = chunkBytesFor(sending);
  return pools.find((pool) => pool.bufferSize === size)!;
}

type Destination = NodeJS.WritableStream & { destroyed?: boolean; writableNeedDrain?: boolean };

/**
 * A committed blob file's bytes from `start` to `end` (inclusive), like `fs.createReadStream` with
 * 1 MiB chunks (`pending` until opened, then `open` and `ready`), with one difference on the hit path:
 * piped into an HTTP/1 response (fastify sends a stream with `pipe`), it writes each chunk itself and
 * takes the chunk's buffer back from `write`'s callback, when the socket no longer holds it, to read
 * the next chunk into; the following chunk is read while one is being written. Read any other way
 * (`data`, async iteration, several destinations) every chunk is a buffer of its own, as before.
 * A file shorter than the range is an error, never a short answer.
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
    // Only an HTTP/1 response is known to be done with a chunk at write's callback (its socket has
    // encrypted or sent it); a transform may pass the very buffer on. Anything but a first, lone
    // destination of an unread stream goes the ordinary way too.
    const ordinary = !(destination instanceof ServerResponse) || this.pumping || this.readableFlowing !== null || this.readableLength > 0 || this.readableEnded;
    if (ordinary) return super.pipe(destination, options);
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

  private async pump(destination: Destination, end: boolean): Promise<void> {
    sending += 1;
    try {
      await this.send(destination, end);
    } finally {
      sending -= 1;
    }
  }

  private async send(destination: Destination, end: boolean): Promise<void> {
    if (this.pending && !(await this.opened())) return;
    let next = this.readAhead();
    while (next) {
      const { buffer, chunk } = await next;
      next = this.readAhead();
      if (this.destroyed || destination.destroyed) {
        giveBack(buffer);
        void next?.then(({ buffer: unused }) => giveBack(unused));
        return;
      }
      const more = destination.write(chunk, () => giveBack(buffer));
      if (!more && next) await drained(destination);
    }
    if (this.destroyed) return;
    if (end) destination.end();
    // Ends this stream the way reading it to the end would: `end`, then `close`.
    this.push(null);
    this.resume();
  }

  /** The next chunk's read, started now so that it overlaps the write of the one before; null past the end. */
  private readAhead(): Promise<{ buffer: Buffer; chunk: Buffer }> | null {
    if (this.position > this.last || this.destroyed) return null;
    const next = this.readPooled();
    // Awaited by the loop, or dropped with the stream: either way no unhandled rejection.
    next.catch(() => undefined);
    return next;
  }

  private async readPooled(): Promise<{ buffer: Buffer; chunk: Buffer }> {
    const buffer = poolNow().take();
    try {
      return { buffer, chunk: await this.readChunk(buffer.subarray(0, Math.min(buffer.length, this.last - this.position + 1))) };
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
      if (count === 0) throw new Error(`${this.path} ends at byte ${start + filled}, before the ${this.last + 1} bytes it should hold`);
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

/** To the pool of its size (a buffer taken while fewer were sending may come back when more are). */
function giveBack(buffer: Buffer): void {
  pools.find((pool) => pool.bufferSize === buffer.length)?.give(buffer);
}

/** Resolves once `destination` takes writes again, or can take none any more. */
function drained(destination: Destination): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      destination.off('drain', done);
      destination.off('close', done);
      destination.off('error', done);
      resolve();
    };
    destination.on('drain', done);
    destination.on('close', done);
    destination.on('error', done);
  });
}
