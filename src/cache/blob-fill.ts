import { rm } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, type Digest } from '../registry/digest.js';
import type { BlobUpload } from './blob-store.js';
import type { BlobEntry, BlobMeta, ByteRange, Fill, FillOptions } from './blob-types.js';
import { IO_CHUNK } from './durable-files.js';
import { FillError } from './fill-error.js';
import { FillReader, type FillSource } from './fill-reader.js';
import { FillRelay } from './fill-relay.js';
import { OffThreadHash } from './off-thread-hash.js';
import { StoreWait } from './store-wait.js';
import { TempFile } from './temp-file.js';

/**
 * How long a fill waits for its store to take one chunk (an S3 part on its way, room among the part
 * buffers) before it goes on without the store: twice the S3 client's own idle timeout, so a part that
 * is moving at all is never cut, while a store that takes nothing cannot hold a fill forever.
 */
export const DEFAULT_STORE_TIMEOUT_MS = 120_000;

/** The cache's side of a fill. */
export interface FillHost {
  readonly logger: FastifyBaseLogger;
  /** The upstream's silence that ends a fill: nothing received for this long while the fill waited for it. */
  readonly stallTimeoutMs: number;
  /** How long the fill waits for its store to take a chunk; default DEFAULT_STORE_TIMEOUT_MS. */
  readonly storeTimeoutMs?: number;
  /** The most a fill may write (CACHE_MAX_SIZE): a longer body cannot be kept, and is relayed to its readers instead. */
  readonly maxBytes: number;
  /** Once the temp file fails, how far (in bytes) the slowest reader may trail the source: the memory a relay holds. */
  readonly relayWindowBytes: number;
  /** Where the fill's bytes go besides its temp file (the spool its readers follow). */
  beginUpload(digest: Digest, tmpPath: string, meta: BlobMeta): BlobUpload;
  /** Indexes a verified, fsynced temp file, commits its upload and forgets the fill as active; called once. */
  commit(fill: BlobFill, upload: BlobUpload, size: number): Promise<BlobEntry>;
  /** The fill was dropped: forget it as the active fill for its digest. */
  abandon(fill: BlobFill): void;
  /** For readers asked for after the fill's file handle closed: the committed blob, if still cached. */
  readCommitted(digest: Digest, range: ByteRange | undefined): Readable | undefined;
}

/**
 * One download of one blob into a temp file, hashed as it streams; shared by every reader of the digest.
 * The fill owns its source: readers come and go (a client disconnecting never aborts it), and only a
 * stall, a source error, a bad body or closing the cache ends it early.
 *
 * When the temp file fails (a full disk), the fill is dropped from the cache but not from its readers:
 * it becomes a relay that goes on hashing the source and hands the readers it already had the bytes
 * from memory, the final byte still only after the digest matched. New readers are refused. A body
 * longer than the cache may hold takes the same way: the disk is not filled for a blob that cannot stay.
 */
export class BlobFill implements Fill, FillSource {
  readonly digest: Digest;
  readonly meta: BlobMeta;
  readonly done: Promise<BlobEntry>;

  private readonly host: FillHost;
  private readonly tmpPath: string;
  private readonly file: TempFile;
  private readonly upload: BlobUpload;
  private readonly hash: OffThreadHash;
  private readonly storeTimeoutMs: number;
  private readonly started = performance.now();
  private resolveDone!: (entry: BlobEntry) => void;
  private rejectDone!: (error: FillError) => void;

  private state: 'filling' | 'committed' | 'relayed' | 'failed' = 'filling';
  /** The readers' failure. */
  private error: FillError | undefined;
  /** Why the cache gave the fill up; set once, with the one log line and the rejection of `done`. */
  private dropped: FillError | undefined;
  private abortError: FillError | undefined;
  private isVerified = false;
  /** The writer holds one reference to the temp file, each reader one more. */
  private fileRefs = 1;
  private readonly readers = new Set<FillReader>();
  private received = 0;
  /** Set when the temp file failed: every byte from the point of failure on, as received. */
  private relay: FillRelay | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly storeWait: StoreWait;
  /** Set when the store took nothing for storeTimeoutMs: the fill goes on for its readers, uncached. */
  private storeFailure: FillError | undefined;
  private sink: Writable | undefined;
  private waiters: Array<() => void> = [];

  constructor(digest: Digest, source: Readable, meta: BlobMeta, tmpPath: string, host: FillHost, options: FillOptions = {}) {
    this.digest = digest;
    this.meta = meta;
    this.tmpPath = tmpPath;
    this.host = host;
    this.storeTimeoutMs = host.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    this.storeWait = new StoreWait(this.storeTimeoutMs, () => this.giveUpStore());
    this.hash = new OffThreadHash(digest);
    this.file = new TempFile(
      tmpPath,
      {
        written: () => this.notify(),
        failed: (error, unwritten) => this.toRelay(error, unwritten),
        idleFailed: (error) => this.sink?.destroy(error),
      },
      { freesChunks: options.freesChunks === true },
    );
    this.upload = host.beginUpload(digest, tmpPath, meta);
    this.done = new Promise<BlobEntry>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody has to await `done`; an unobserved rejection must not take the process down.
    this.done.catch(() => undefined);
    // The pipeline is built a microtask later (run), and in an I/O callback Node emits a destroyed
    // stream's 'error' before that: heard here meanwhile, found by the pipeline on the stream.
    source.on('error', ignoreUntilPiped);
    void this.run(source);
  }

  reader(range?: ByteRange): Readable {
    const start = range?.start ?? 0;
    const end = range?.end ?? Number.POSITIVE_INFINITY;
    if (!Number.isSafeInteger(start) || start < 0 || end < start) {
      throw new RangeError(`invalid byte range ${start}-${end}`);
    }
    if (this.state === 'failed' && this.error) return failedStream(this.error);
    // A relay serves the readers it had; a newcomer would need bytes it no longer holds.
    if (this.dropped) return failedStream(this.dropped);
    if (this.fileRefs === 0) {
      const committed = this.host.readCommitted(this.digest, range);
      return committed ?? failedStream(new Error(`blob ${this.digest} is no longer cached`));
    }
    this.fileRefs += 1;
    const reader = new FillReader(this, start, end);
    this.readers.add(reader);
    return reader;
  }

  /** Drops the fill (the cache is closing); `done` rejects with reason 'closed'. A relay is no longer the cache's. */
  abort(): void {
    if (this.state !== 'filling' || this.isVerified || this.relay) return;
    this.abortError = new FillError('closed', 'the cache was closed during the fill');
    this.sink?.destroy(this.abortError);
  }

  get readableBytes(): number {
    // The relay's end, not `received`: the chunks being taken when the file stopped reach it a moment later.
    const available = this.relay ? this.relay.end : this.file.available;
    if (this.isVerified) return available;
    // The newest byte waits for the next one or for the digest, whatever length was announced: a body
    // that stops short of it may still be the whole blob, and no client gets that before it is verified.
    return Math.max(0, available - 1);
  }

  get verified(): boolean {
    return this.isVerified;
  }

  /** Failures after verification leave readers alone: the bytes they are sending are known to be right. */
  get failure(): Error | undefined {
    return this.isVerified ? undefined : this.error;
  }

  read(position: number, length: number): Promise<Buffer> {
    if (this.relay && position >= this.relay.start) return Promise.resolve(this.relay.slice(position, length));
    // A relay's readers still behind the point of failure read what was written before it.
    return this.file.read(position, length);
  }

  readInto(position: number, target: Buffer): Promise<number> {
    if (this.relay && position >= this.relay.start) return Promise.resolve(this.relay.copyTo(position, target));
    return this.file.readInto(position, target);
  }

  waitForProgress(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  advanced(): void {
    // The space on disk comes back once no reader needs the part written before the failure.
    if (this.relay && this.relay.advanced() >= this.file.written) this.closeFile();
  }

  release(reader: FillReader): void {
    this.readers.delete(reader);
    if (this.relay && this.state === 'filling' && this.readers.size === 0) this.sink?.destroy(lastReaderLeft());
    this.advanced();
    this.releaseFile();
  }

  private releaseFile(): void {
    this.fileRefs -= 1;
    if (this.fileRefs === 0) this.closeFile();
  }

  private closeFile(): void {
    this.file.close().catch((error: unknown) => this.host.logger.warn({ err: error, digest: this.digest }, 'cache fill: closing the temp file failed'));
  }

  private async run(source: Readable): Promise<void> {
    try {
      // Built once the constructor's caller is done: a miss's first client is sent its headers first.
      await Promise.resolve();
      if (this.abortError) throw this.abortError;
      // Not awaited: the body flows (and reaches readers from memory) while the file is created; a
      // file that cannot be created comes back through its `failed` hook, with every chunk unwritten.
      this.file.create().catch(() => undefined);
      this.sink = new Writable({
        highWaterMark: IO_CHUNK,
        write: (chunk: Buffer, _encoding, callback) => void this.accept([chunk]).then(() => callback(), callback),
        writev: (chunks, callback) => void this.accept(chunks.map(({ chunk }) => chunk as Buffer)).then(() => callback(), callback),
        final: (callback) => void this.file.flush().then(() => callback(), callback),
      });
      this.stallTimer = setTimeout(() => this.onStall(), this.host.stallTimeoutMs);
      const piped = pipeline(source, this.sink);
      source.off('error', ignoreUntilPiped);
      await piped;
      this.clearTimers();
      await this.check();
      this.isVerified = true;
      this.notify();
      if (this.relay) {
        this.state = 'relayed';
        this.host.logger.info({ digest: this.digest, bytes: this.received, ms: this.elapsed() }, 'dropped cache fill: its readers got the blob from memory');
        return;
      }
      // Its readers have every byte; the cache cannot have the blob.
      if (this.storeFailure) throw this.storeFailure;
      await this.file.sync();
      const entry = await this.host.commit(this, this.upload, this.file.written).catch((error: unknown) => {
        throw error instanceof FillError ? error : new FillError('io-error', 'cannot commit the blob', { cause: error });
      });
      this.state = 'committed';
      this.host.logger.info({ digest: this.digest, bytes: this.file.written, ms: this.elapsed() }, 'cache fill committed');
      this.resolveDone(entry);
    } catch (error) {
      await this.fail(FillError.from(error), source);
    } finally {
      this.releaseFile();
    }
  }

  /**
   * Takes what the source sent: one chunk, or every chunk that came while the last ones were taken
   * (`writev`), so that the work per call is not paid per 16 KiB TLS record.
   */
  private async accept(chunks: readonly Buffer[]): Promise<void> {
    this.stallTimer?.refresh();
    for (const chunk of chunks) {
      this.received += chunk.length;
      if (this.meta.size !== undefined && this.received > this.meta.size) {
        throw new FillError('size-mismatch', `the body is longer than the announced ${this.meta.size} bytes`);
      }
      this.hash.update(chunk);
    }
    // An upstream may send without end (no length announced, or a length it never reaches); a length
    // announced above the cap is believed at once: nothing of it is written.
    if (!this.relay && Math.max(this.received, this.meta.size ?? 0) > this.host.maxBytes) await this.file.stop(tooLarge(this.host.maxBytes));
    if (this.relay) {
      if (this.readers.size === 0) throw lastReaderLeft();
      for (const chunk of chunks) this.relay.append(chunk);
      this.notify();
      await this.relay.room();
    } else {
      await this.file.appendAll(chunks);
    }
    // The hash runs on its own thread: a source faster than it waits here, once the chunks are readable.
    await this.hash.room();
    // The source was held back while the disk worked, a reader caught up or the hash did; that wait is not the source's silence.
    this.stallTimer?.refresh();
    // The store takes the same bytes, in order; it never fails the fill's readers (its commit does).
    for (const chunk of chunks) {
      const uploaded = this.storeFailure ? undefined : this.upload.append(chunk);
      if (!uploaded) continue;
      // The backpressure of a slow bucket: meanwhile a stall is not the upstream's (see onStall).
      await this.storeWait.wait(uploaded);
      this.stallTimer?.refresh();
    }
    // The hash and the store are done with these chunks: only the temp file may still need them.
    this.file.takenUpTo(this.received);
  }

  /** The store took nothing within its bound: its upload is aborted, and the fill serves its readers without it. */
  private giveUpStore(): void {
    this.storeFailure = new FillError('io-error', `the blob store took nothing for ${this.storeTimeoutMs} ms; the fill goes on for its readers, uncached`);
    this.host.logger.warn({ digest: this.digest, bytes: this.received, ms: this.elapsed() }, 'cache fill: the blob store takes nothing; going on without it');
    // Now, not at the end of the fill: whatever the upload holds (part buffers, room it waits for) is let go.
    this.upload.abort().catch((error: unknown) => this.host.logger.warn({ err: error, digest: this.digest }, 'cache fill: aborting the upload failed'));
  }

  /**
   * The temp file failed: the fill is dropped from the cache (once: temp file removed, logged, `done`
   * rejected), and its readers go on from memory. Throws `error` when there is no reader to go on for.
   */
  private toRelay(error: FillError, unwritten: Buffer[]): void {
    if (this.readers.size === 0) throw error;
    this.relay = new FillRelay(this.file.written, this.readers, this.host.relayWindowBytes);
    for (const chunk of unwritten) this.relay.append(chunk);
    void this.drop(error);
    this.advanced();
    this.notify();
  }

  private async check(): Promise<void> {
    const { size } = this.meta;
    if (size !== undefined && this.received < size) {
      throw new FillError('truncated', `the body ended after ${this.received} of ${size} bytes`);
    }
    const hex = await this.hash.digest().catch((error: unknown) => {
      throw new FillError('io-error', 'the blob could not be hashed', { cause: error });
    });
    if (hex !== digestHex(this.digest)) {
      throw new FillError('digest-mismatch', `the body does not match ${this.digest} (${this.received} bytes hash to ${hex})`);
    }
  }

  private onStall(): void {
    // The fill is waiting for its store, not for the upstream: that wait has a bound of its own.
    if (this.storeWait.waiting) return void this.stallTimer?.refresh();
    const readers = this.relay?.holding ? this.relay.cutOffLaggards() : 0;
    if (readers > 0) {
      // The source was not silent but held for readers that stopped reading: they go, the others stay.
      this.host.logger.warn({ digest: this.digest, readers, bytes: this.host.relayWindowBytes }, 'dropped cache fill: readers too far behind were cut off');
      this.stallTimer?.refresh();
      return;
    }
    this.sink?.destroy(new FillError('stall', `nothing received or written for ${this.host.stallTimeoutMs} ms`));
  }

  private async fail(error: FillError, source: Readable): Promise<void> {
    if (this.state !== 'filling') return;
    this.state = 'failed';
    this.error = error;
    this.clearTimers();
    this.notify();
    this.relay?.letGo();
    this.hash.drop();
    source.destroy();
    this.sink?.destroy();
    if (!this.relay) return this.drop(error);
    // Dropped already, and said so: this is the end of the relay.
    this.host.logger[this.readers.size > 0 ? 'warn' : 'debug'](
      { digest: this.digest, reason: error.reason, bytes: this.received, ms: this.elapsed(), err: error },
      'dropped cache fill: relay to its readers failed',
    );
  }

  /** Takes the fill out of the cache: no entry, no temp file, one log line, `done` rejected. Once. */
  private async drop(error: FillError): Promise<void> {
    if (this.dropped) return;
    this.dropped = error;
    this.host.abandon(this);
    // Nothing of a dropped fill may become readable in the store (a partial multipart upload is aborted).
    await this.upload.abort().catch((abortError: unknown) =>
      this.host.logger.warn({ err: abortError, digest: this.digest }, 'cache fill: aborting the upload failed'),
    );
    // A file still being created would appear after its removal.
    await this.file.created();
    await rm(this.tmpPath, { force: true }).catch((rmError: unknown) =>
      this.host.logger.warn({ err: rmError, digest: this.digest }, 'cache fill: removing the temp file failed'),
    );
    const level = error.reason === 'closed' ? 'info' : 'warn';
    const relay = this.relay ? { relay: true, readers: this.readers.size } : {};
    this.host.logger[level]({ digest: this.digest, reason: error.reason, bytes: this.received, ms: this.elapsed(), ...relay, err: error }, 'cache fill dropped');
    this.rejectDone(error);
  }

  private clearTimers(): void {
    clearTimeout(this.stallTimer);
    this.storeWait.stop();
    this.file.stopTimer();
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

/** A fill's source's 'error' listener until the pipeline listens (see the constructor). */
function ignoreUntilPiped(): void {}

function tooLarge(maxBytes: number): FillError {
  return new FillError('too-large', `the body is longer than the cache may hold (${maxBytes} bytes)`);
}

function lastReaderLeft(): FillError {
  return new FillError('io-error', 'the last reader of a dropped cache fill left');
}

/** A byte stream that fails as soon as it is read (the error is emitted on the next tick). */
function failedStream(error: Error): Readable {
  return new Readable({ read() {} }).destroy(error);
}
