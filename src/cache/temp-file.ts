import { open, type FileHandle } from 'node:fs/promises';
import { freeNow, ownsItsMemory } from '../memory/free-now.js';
import { ByteWindow } from './byte-window.js';
import { IO_CHUNK } from './durable-files.js';
import { FillError } from './fill-error.js';

/** A slow source still reaches its followers within this long, even before 1 MiB has piled up. */
const IDLE_FLUSH_MS = 10;

/** How a temp file tells its fill what happened. */
export interface TempFileHooks {
  /** More bytes can be read: queued (held in memory) or on disk. */
  written(): void;
  /**
   * A write failed and the file takes no more: `unwritten` is every byte queued from `written` on, in
   * order. Throwing fails the write with the thrown error instead.
   */
  failed(error: FillError, unwritten: Buffer[]): void;
  /** A failure no caller waits for (the idle timer's write, creating the file) could not be relayed: `failed` threw. */
  idleFailed(error: FillError): void;
}

export interface TempFileOptions {
  /**
   * Chunks that are each the whole of a buffer of their own are freed (their buffer detached) once
   * written and, by `takenUpTo`, done with elsewhere (src/cache/blob-types.ts, FillOptions).
   */
  readonly freesChunks?: boolean;
}

/**
 * A fill's temp file: chunks queued as they arrive and written 1 MiB at a time, one write after the
 * other so that positions follow each other, and read back at any written position. Reading through
 * the handle rather than the path keeps working after the file is renamed into place or unlinked.
 */
export class TempFile {
  private readonly path: string;
  private readonly hooks: TempFileHooks;
  private readonly freesChunks: boolean;
  /**
   * Chunks to free, in order, with the position after each. An upstream's 16 KiB records were freed
   * only when the young generation was next collected, which is triggered by the heap's own
   * allocations, not by theirs: megabytes of records were dead and waiting at any time, and glibc's
   * heap grew to hold them and kept that size for good.
   */
  private toFree: Array<{ chunk: Buffer; end: number }> = [];
  private taken = 0;
  private handle: FileHandle | undefined;
  /** The file being created: writes (and the fsync) wait for it, nothing else does. */
  private opening: Promise<void> | undefined;
  private closed = false;
  private bytesWritten = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  private idleFlush: NodeJS.Timeout | undefined;
  private broken = false;
  /**
   * The chunks queued and being written, as they came: readable from memory at once (the first byte
   * does not wait for the first MiB to be written, nor for the idle flush), and only until they are
   * written. A chunk kept in memory longer outlives two young-generation collections, and an upstream's
   * 16 KiB chunks promoted to the old generation by the thousand forced about 40 full collections per
   * cold GiB (3 s of the GC threads' CPU). Readers further behind read the file back.
   */
  private readonly queued = new ByteWindow(0);

  constructor(path: string, hooks: TempFileHooks, options: TempFileOptions = {}) {
    this.path = path;
    this.hooks = hooks;
    this.freesChunks = options.freesChunks === true;
  }

  /** Bytes on disk, from 0 on; frozen once a write failed. */
  get written(): number {
    return this.bytesWritten;
  }

  /** Bytes that `read` can give, from 0 on: those on disk and those queued; after a failed write, those on disk. */
  get available(): number {
    return this.broken ? this.bytesWritten : this.queued.end;
  }

  /**
   * Starts creating the file. Chunks are queued (and readable) meanwhile: creating a file costs a
   * millisecond or two, and a cold blob's first byte need not wait for it. Writes start once it
   * exists; when it cannot be created, every chunk queued is handed to `failed` as unwritten.
   */
  create(): Promise<void> {
    this.opening ??= open(this.path, 'wx+').then(
      (handle) => {
        // Closed before it was open: nothing will read or write it.
        if (this.closed) return void handle.close().catch(() => undefined);
        this.handle = handle;
      },
      (error: unknown) => {
        const failure = new FillError('io-error', 'cannot create the temp file', { cause: error });
        try {
          this.breakWith(failure, []);
        } catch (thrown) {
          this.hooks.idleFailed(FillError.from(thrown));
        }
        throw failure;
      },
    );
    return this.opening;
  }

  /** Resolves once the file exists or could not be created: only then may its path be removed. */
  async created(): Promise<void> {
    await this.opening?.catch(() => undefined);
  }

  append(chunk: Buffer): Promise<void> {
    return this.appendAll([chunk]);
  }

  /** Queues `chunks` in order; resolves at once unless a MiB or more is queued, then once it is written. */
  async appendAll(chunks: readonly Buffer[]): Promise<void> {
    for (const chunk of chunks) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.queued.append(chunk);
      if (this.freesChunks && !this.broken && ownsItsMemory(chunk)) this.toFree.push({ chunk, end: this.queued.end });
    }
    this.hooks.written();
    if (this.pendingBytes >= IO_CHUNK) return this.flush();
    this.idleFlush ??= setTimeout(() => {
      this.idleFlush = undefined;
      this.flush().catch((error: unknown) => this.hooks.idleFailed(FillError.from(error)));
    }, IDLE_FLUSH_MS);
  }

  /** Writes everything queued. */
  async flush(): Promise<void> {
    await this.created();
    while ((this.pendingBytes > 0 && !this.broken) || this.writing) {
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

  /** The fill is done with every chunk before `position` (hashed, taken by the store): those on disk can be freed. */
  takenUpTo(position: number): void {
    this.taken = Math.max(this.taken, position);
    this.freeWritten();
  }

  /**
   * Up to `length` available bytes from `position`: from memory while still queued (a copy when
   * chunks are freed, so that no reader holds a view of one), else read back into a buffer of their own.
   */
  async read(position: number, length: number): Promise<Buffer> {
    if (position >= this.queued.start && position < this.queued.end) {
      const queued = this.queued.slice(position, length);
      return this.freesChunks ? Buffer.from(queued) : queued;
    }
    if (!this.handle || position >= this.bytesWritten) throw new Error(`byte ${position} is not in the temp file`);
    const buffer = Buffer.allocUnsafe(Math.min(length, this.bytesWritten - position));
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
    return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }

  /**
   * Copies available bytes from `position` into `target` (from memory while still queued, else read
   * back from the file); returns how many, at least one for a position below `available`.
   */
  async readInto(position: number, target: Buffer): Promise<number> {
    if (position >= this.queued.start && position < this.queued.end) return this.queued.copyTo(position, target);
    if (!this.handle || position >= this.bytesWritten) throw new Error(`byte ${position} is not in the temp file`);
    const length = Math.min(target.length, this.bytesWritten - position);
    const { bytesRead } = await this.handle.read(target, 0, length, position);
    if (bytesRead === 0) throw new Error('the temp file is shorter than the bytes written to it');
    return bytesRead;
  }

  async sync(): Promise<void> {
    await this.opening;
    try {
      if (!this.handle) throw new Error('the temp file is not open');
      await this.handle.sync();
    } catch (error) {
      throw new FillError('io-error', 'cannot fsync the temp file', { cause: error });
    }
  }

  stopTimer(): void {
    clearTimeout(this.idleFlush);
    this.idleFlush = undefined;
  }

  /**
   * The file takes no more, by the fill's choice (its blob cannot be kept): once the write under way
   * has ended, `failed` gets `error` and every chunk still queued, as after a failed write.
   */
  async stop(error: FillError): Promise<void> {
    this.stopTimer();
    // A write under way ends first: its bytes are on disk or handed over, never lost between the two.
    while (this.writing) await this.writing;
    this.breakWith(error, []);
  }

  /** Closes the handle (once; later calls do nothing). */
  async close(): Promise<void> {
    this.closed = true;
    const handle = this.handle;
    this.handle = undefined;
    this.queued.trimTo(this.queued.end);
    this.toFree = [];
    await handle?.close();
  }

  /** The file takes no more: `failed` gets the chunks of the write that failed and every one queued after them. */
  private breakWith(error: FillError, chunks: Buffer[]): void {
    // Stopped already (stop, then the file's creation failing): the fill was told once.
    if (this.broken) return;
    this.broken = true;
    this.stopTimer();
    // The relay keeps the chunks not on disk: none of them may be freed any more.
    this.toFree = [];
    const unwritten = [...chunks, ...this.pending];
    this.pending = [];
    this.pendingBytes = 0;
    this.hooks.failed(error, unwritten);
  }

  private freeWritten(): void {
    const limit = Math.min(this.bytesWritten, this.taken);
    let freed = 0;
    while (freed < this.toFree.length && this.toFree[freed]!.end <= limit) {
      // Now, while its memory is still the allocator's most recent block.
      freeNow(this.toFree[freed]!.chunk);
      freed += 1;
    }
    if (freed > 0) this.toFree.splice(0, freed);
  }

  private async writeAt(chunks: Buffer[], length: number): Promise<void> {
    try {
      if (!this.handle) throw new Error('the temp file is not open');
      let done = (await this.handle.writev(chunks, this.bytesWritten)).bytesWritten;
      if (done < length) {
        // Short writes are rare on regular files, but a retry must not repeat bytes.
        const rest = Buffer.concat(chunks, length);
        while (done < length) {
          done += (await this.handle.write(rest, done, length - done, this.bytesWritten + done)).bytesWritten;
        }
      }
    } catch (error) {
      // Whatever part of this write reached the disk is ignored: what follows starts where the last whole write ended.
      this.breakWith(new FillError('io-error', 'cannot write the temp file', { cause: error }), chunks);
      return;
    }
    this.bytesWritten += length;
    this.queued.trimTo(this.bytesWritten);
    this.freeWritten();
    this.hooks.written();
  }
}
