import type { Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, hasherFor, type Digest } from '../registry/digest.js';
import type { BlobEntry, BlobMeta, ByteRange, Fill } from './blob-types.js';
import { IO_CHUNK } from './durable-files.js';
import { FillError } from './fill-error.js';
import { FillReader, type FillSource } from './fill-reader.js';

/** A slow source still reaches its followers within this long, even before 1 MiB has piled up. */
const IDLE_FLUSH_MS = 10;

/** The cache's side of a fill. */
export interface FillHost {
  readonly logger: FastifyBaseLogger;
  readonly stallTimeoutMs: number;
  /** Indexes and installs a verified, fsynced temp file and forgets the fill as active; called once. */
  commit(fill: BlobFill, tmpPath: string, size: number): Promise<BlobEntry>;
  /** The fill was dropped: forget it as the active fill for its digest. */
  abandon(fill: BlobFill): void;
  /** For readers asked for after the fill's file handle closed: the committed blob, if still cached. */
  readCommitted(digest: Digest, range: ByteRange | undefined): Readable | undefined;
}

/**
 * One download of one blob into a temp file, hashed as it streams; shared by every reader of the digest.
 * The fill owns its source: readers come and go (a client disconnecting never aborts it), and only a
 * stall, a source error, a bad body or closing the cache ends it early.
 */
export class BlobFill implements Fill, FillSource {
  readonly digest: Digest;
  readonly meta: BlobMeta;
  readonly done: Promise<BlobEntry>;

  private readonly host: FillHost;
  private readonly tmpPath: string;
  private readonly hash: Hash;
  private readonly started = performance.now();
  private resolveDone!: (entry: BlobEntry) => void;
  private rejectDone!: (error: FillError) => void;

  private state: 'filling' | 'committed' | 'failed' = 'filling';
  private error: FillError | undefined;
  private abortError: FillError | undefined;
  private isVerified = false;
  private handle: FileHandle | undefined;
  /** The writer holds one reference, each reader one more. */
  private handleRefs = 1;
  private received = 0;
  private written = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  private idleFlush: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private sink: Writable | undefined;
  private waiters: Array<() => void> = [];

  constructor(digest: Digest, source: Readable, meta: BlobMeta, tmpPath: string, host: FillHost) {
    this.digest = digest;
    this.meta = meta;
    this.tmpPath = tmpPath;
    this.host = host;
    this.hash = hasherFor(digest);
    this.done = new Promise<BlobEntry>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody has to await `done`; an unobserved rejection must not take the process down.
    this.done.catch(() => undefined);
    void this.run(source);
  }

  reader(range?: ByteRange): Readable {
    const start = range?.start ?? 0;
    const end = range?.end ?? Number.POSITIVE_INFINITY;
    if (!Number.isSafeInteger(start) || start < 0 || end < start) {
      throw new RangeError(`invalid byte range ${start}-${end}`);
    }
    if (this.state === 'failed' && this.error) return failedStream(this.error);
    if (this.handleRefs === 0) {
      const committed = this.host.readCommitted(this.digest, range);
      return committed ?? failedStream(new Error(`blob ${this.digest} is no longer cached`));
    }
    this.handleRefs += 1;
    return new FillReader(this, start, end);
  }

  /** Drops the fill (the cache is closing); `done` rejects with reason 'closed'. */
  abort(): void {
    if (this.state !== 'filling' || this.isVerified) return;
    this.abortError = new FillError('closed', 'the cache was closed during the fill');
    this.sink?.destroy(this.abortError);
  }

  get readableBytes(): number {
    if (this.isVerified) return this.written;
    const finalByte = this.meta.size !== undefined ? this.meta.size - 1 : this.written - 1;
    return Math.max(0, Math.min(this.written, finalByte));
  }

  get verified(): boolean {
    return this.isVerified;
  }

  /** Failures after verification leave readers alone: the bytes they are sending are known to be right. */
  get failure(): Error | undefined {
    return this.isVerified ? undefined : this.error;
  }

  async readAt(buffer: Buffer, length: number, position: number): Promise<number> {
    if (!this.handle) return 0;
    const { bytesRead } = await this.handle.read(buffer, 0, length, position);
    return bytesRead;
  }

  waitForProgress(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  releaseHandle(): void {
    this.handleRefs -= 1;
    if (this.handleRefs > 0 || !this.handle) return;
    this.handle.close().catch((error: unknown) => this.host.logger.warn({ err: error, digest: this.digest }, 'cache fill: closing the temp file failed'));
  }

  private async run(source: Readable): Promise<void> {
    try {
      this.handle = await open(this.tmpPath, 'wx+').catch((error: unknown) => {
        throw new FillError('io-error', 'cannot create the temp file', { cause: error });
      });
      if (this.abortError) throw this.abortError;
      this.sink = new Writable({
        highWaterMark: IO_CHUNK,
        write: (chunk: Buffer, _encoding, callback) => void this.accept(chunk).then(() => callback(), callback),
        final: (callback) => void this.flush().then(() => callback(), callback),
      });
      this.stallTimer = setTimeout(() => this.onStall(), this.host.stallTimeoutMs);
      await pipeline(source, this.sink);
      this.clearTimers();
      this.check();
      this.isVerified = true;
      this.notify();
      await this.handle.sync().catch((error: unknown) => {
        throw new FillError('io-error', 'cannot fsync the temp file', { cause: error });
      });
      const entry = await this.host.commit(this, this.tmpPath, this.written).catch((error: unknown) => {
        throw error instanceof FillError ? error : new FillError('io-error', 'cannot commit the blob', { cause: error });
      });
      this.state = 'committed';
      this.host.logger.info({ digest: this.digest, bytes: this.written, ms: this.elapsed() }, 'cache fill committed');
      this.resolveDone(entry);
    } catch (error) {
      await this.fail(FillError.from(error), source);
    } finally {
      this.releaseHandle();
    }
  }

  private async accept(chunk: Buffer): Promise<void> {
    this.stallTimer?.refresh();
    this.received += chunk.length;
    if (this.meta.size !== undefined && this.received > this.meta.size) {
      throw new FillError('size-mismatch', `the body is longer than the announced ${this.meta.size} bytes`);
    }
    this.hash.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= IO_CHUNK) {
      await this.flush();
      // The source was held back while the disk worked; that wait is not the source's silence.
      this.stallTimer?.refresh();
    } else {
      this.idleFlush ??= setTimeout(() => {
        this.idleFlush = undefined;
        this.flush().catch((error: unknown) => this.sink?.destroy(FillError.from(error)));
      }, IDLE_FLUSH_MS);
    }
  }

  /** Writes everything pending; one write at a time, so positions follow each other. */
  private async flush(): Promise<void> {
    while (this.pendingBytes > 0 || this.writing) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      const chunks = this.pending;
      const length = this.pendingBytes;
      this.pending = [];
      this.pendingBytes = 0;
      this.writing = this.writeAt(chunks, length).finally(() => {
        this.writing = undefined;
      });
    }
  }

  private async writeAt(chunks: Buffer[], length: number): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new FillError('io-error', 'the temp file is not open');
    try {
      let done = (await handle.writev(chunks, this.written)).bytesWritten;
      if (done < length) {
        // Short writes are rare on regular files, but a retry must not repeat bytes.
        const rest = Buffer.concat(chunks, length);
        while (done < length) {
          done += (await handle.write(rest, done, length - done, this.written + done)).bytesWritten;
        }
      }
    } catch (error) {
      throw new FillError('io-error', 'cannot write the temp file', { cause: error });
    }
    this.written += length;
    this.notify();
  }

  private check(): void {
    const { size } = this.meta;
    if (size !== undefined && this.received < size) {
      throw new FillError('truncated', `the body ended after ${this.received} of ${size} bytes`);
    }
    const hex = this.hash.digest('hex');
    if (hex !== digestHex(this.digest)) {
      throw new FillError('digest-mismatch', `the body does not match ${this.digest} (${this.received} bytes hash to ${hex})`);
    }
  }

  private onStall(): void {
    this.sink?.destroy(new FillError('stall', `nothing received or written for ${this.host.stallTimeoutMs} ms`));
  }

  private async fail(error: FillError, source: Readable): Promise<void> {
    if (this.state !== 'filling') return;
    this.state = 'failed';
    this.error = error;
    this.clearTimers();
    this.host.abandon(this);
    this.notify();
    source.destroy();
    this.sink?.destroy();
    await rm(this.tmpPath, { force: true }).catch((rmError: unknown) =>
      this.host.logger.warn({ err: rmError, digest: this.digest }, 'cache fill: removing the temp file failed'),
    );
    const level = error.reason === 'closed' ? 'info' : 'warn';
    this.host.logger[level](
      { digest: this.digest, reason: error.reason, bytes: this.received, ms: this.elapsed(), err: error },
      'cache fill dropped',
    );
    this.rejectDone(error);
  }

  private clearTimers(): void {
    clearTimeout(this.stallTimer);
    clearTimeout(this.idleFlush);
    this.idleFlush = undefined;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started);
  }
}

/** A byte stream that fails as soon as it is read (the error is emitted on the next tick). */
function failedStream(error: Error): Readable {
  return new Readable({ read() {} }).destroy(error);
}
