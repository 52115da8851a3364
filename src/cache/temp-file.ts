import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { freeNow, ownsItsMemory } from '../memory/free-now.js';
import { ByteWindow } from './byte-window.js';
import { alignedBuffers, DIRECT_BLOCK, directWritesWanted, KEPT_PER_FILL, O_DIRECT, refuseDirectWrites } from './direct-writes.js';
import { IO_CHUNK, isCode } from './durable-files.js';
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
  /** Writes with O_DIRECT where the file system takes it (src/cache/direct-writes.ts); default true. */
  readonly direct?: boolean;
}

/** Bytes just written with O_DIRECT, still in the aligned buffer they were written from. */
interface KeptBuffer {
  readonly start: number;
  readonly buffer: Buffer;
  /** The blob's bytes in `buffer`, from `start` on (the end's padding not counted). */
  readonly length: number;
}

/**
 * The temp file's handles: one for everything, or `writer` opened for O_DIRECT and `buffered` for
 * reading back through the page cache (and for writing, should O_DIRECT be refused after all).
 */
interface Handles {
  readonly writer: FileHandle;
  readonly buffered: FileHandle;
}

/**
 * A fill's temp file: chunks queued as they arrive and written 1 MiB at a time, one write after the
 * other so that positions follow each other, and read back at any written position. Reading through
 * the handle rather than the path keeps working after the file is renamed into place or unlinked.
 * Written with O_DIRECT where it can be (src/cache/direct-writes.ts): whole blocks only until the end,
 * whose last part block is padded and cut off again; the bytes of a part block wait in memory.
 */
export class TempFile {
  private readonly path: string;
  private readonly hooks: TempFileHooks;
  private readonly freesChunks: boolean;
  private readonly wantsDirect: boolean;
  /**
   * Chunks to free, in order, with the position after each. An upstream's 16 KiB records were freed
   * only when the young generation was next collected, which is triggered by the heap's own
   * allocations, not by theirs: megabytes of records were dead and waiting at any time, and glibc's
   * heap grew to hold them and kept that size for good.
   */
  private toFree: Array<{ chunk: Buffer; end: number }> = [];
  private taken = 0;
  /** Where the reader that the fill keeps pace with reads (`keepFor`). */
  private keepFrom = Number.POSITIVE_INFINITY;
  /** The aligned buffers of the last O_DIRECT writes, oldest first, kept for that reader. */
  private kept: KeptBuffer[] = [];
  private handles: Handles | undefined;
  /** Whether writes go through `handles.writer` with O_DIRECT. */
  private direct = false;
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
   * does not wait for the first MiB to be written, nor for the idle flush), and once written only while
   * the reader the fill keeps pace with still wants them (`keepFor`). A chunk kept for long outlives two
   * young-generation collections, and an upstream's 16 KiB chunks promoted to the old generation by the
   * thousand forced about 40 full collections per cold GiB (3 s of the GC threads' CPU): a reader kept
   * pace with is a few MiB, milliseconds, behind. Readers further behind read the file back.
   */
  private readonly queued = new ByteWindow(0);

  constructor(path: string, hooks: TempFileHooks, options: TempFileOptions = {}) {
    this.path = path;
    this.hooks = hooks;
    this.freesChunks = options.freesChunks === true;
    this.wantsDirect = options.direct !== false;
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
    this.opening ??= this.openHandles().then(
      (handles) => {
        // Closed before it was open: nothing will read or write it.
        if (this.closed) return void closeHandles(handles).catch(() => undefined);
        this.handles = handles;
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
    if (this.pendingBytes >= IO_CHUNK) return this.write(false);
    this.idleFlush ??= setTimeout(() => {
      this.idleFlush = undefined;
      this.write(false).catch((error: unknown) => this.hooks.idleFailed(FillError.from(error)));
    }, IDLE_FLUSH_MS);
  }

  /** Writes everything queued: once the last chunk was appended (a part block at the end is written too). */
  flush(): Promise<void> {
    return this.write(true);
  }

  /** Writes what is queued; under O_DIRECT, until `all`, only whole blocks (the rest waits for more bytes). */
  private async write(all: boolean): Promise<void> {
    await this.created();
    while ((this.pendingBytes > 0 && !this.broken) || this.writing) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      const length = all || !this.direct ? this.pendingBytes : this.pendingBytes - (this.pendingBytes % DIRECT_BLOCK);
      if (length === 0) return;
      const chunks = this.takePending(length);
      this.writing = this.writeAt(chunks, length).finally(() => {
        this.writing = undefined;
      });
    }
  }

  /** The first `length` queued bytes, out of `pending` (a chunk cut in two leaves its rest queued). */
  private takePending(length: number): Buffer[] {
    if (length === this.pendingBytes) {
      const chunks = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      return chunks;
    }
    const chunks: Buffer[] = [];
    let taken = 0;
    while (taken < length) {
      const chunk = this.pending[0]!;
      const wanted = length - taken;
      if (chunk.length <= wanted) {
        chunks.push(chunk);
        this.pending.shift();
        taken += chunk.length;
      } else {
        chunks.push(chunk.subarray(0, wanted));
        this.pending[0] = chunk.subarray(wanted);
        taken = length;
      }
    }
    this.pendingBytes -= length;
    return chunks;
  }

  /** The fill is done with every chunk before `position` (hashed, taken by the store): those on disk can be freed. */
  takenUpTo(position: number): void {
    this.taken = Math.max(this.taken, position);
    this.freeWritten();
  }

  /**
   * The reader the fill keeps pace with reads from `position` on (Infinity: there is none). Under
   * O_DIRECT the buffers of the last writes are kept for it (KEPT_PER_FILL at most), so that it does not
   * read the file back: a reader sent a cold blob slower than the fill took it in read most of it back,
   * which took more CPU than the rest of the miss, and with O_DIRECT from the disk. The copies the
   * writes made are what is kept, not the chunks: chunks held longer grew glibc's heap by 2 MB a fill.
   */
  keepFor(position: number): void {
    this.keepFrom = position;
    while (this.kept.length > 0 && (this.keepFrom === Number.POSITIVE_INFINITY || this.kept[0]!.start + this.kept[0]!.length <= this.keepFrom)) {
      alignedBuffers.give(this.kept.shift()!.buffer);
    }
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
    const kept = this.keptAt(position);
    // A copy: the buffer is written from again.
    if (kept) return Buffer.from(kept.buffer.subarray(position - kept.start, Math.min(kept.length, position - kept.start + length)));
    if (!this.handles || position >= this.bytesWritten) throw new Error(`byte ${position} is not in the temp file`);
    const buffer = Buffer.allocUnsafe(Math.min(length, this.bytesWritten - position));
    const { bytesRead } = await this.handles.buffered.read(buffer, 0, buffer.length, position);
    return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }

  /**
   * Copies available bytes from `position` into `target` (from memory while still queued, else read
   * back from the file); returns how many, at least one for a position below `available`.
   */
  async readInto(position: number, target: Buffer): Promise<number> {
    if (position >= this.queued.start && position < this.queued.end) return this.queued.copyTo(position, target);
    const kept = this.keptAt(position);
    if (kept) return kept.buffer.copy(target, 0, position - kept.start, kept.length);
    if (!this.handles || position >= this.bytesWritten) throw new Error(`byte ${position} is not in the temp file`);
    const length = Math.min(target.length, this.bytesWritten - position);
    const { bytesRead } = await this.handles.buffered.read(target, 0, length, position);
    if (bytesRead === 0) throw new Error('the temp file is shorter than the bytes written to it');
    return bytesRead;
  }

  async sync(): Promise<void> {
    await this.opening;
    try {
      if (!this.handles) throw new Error('the temp file is not open');
      await this.handles.writer.sync();
    } catch (error) {
      throw new FillError('io-error', 'cannot fsync the temp file', { cause: error });
    }
  }

  stopTimer(): void {
    clearTimeout(this.idleFlush);
    this.idleFlush = undefined;
  }

  /** Closes the handle (once; later calls do nothing). */
  async close(): Promise<void> {
    this.closed = true;
    const handles = this.handles;
    this.handles = undefined;
    this.queued.trimTo(this.queued.end);
    this.toFree = [];
    this.keepFor(Number.POSITIVE_INFINITY);
    if (handles) await closeHandles(handles);
  }

  private keptAt(position: number): KeptBuffer | undefined {
    return this.kept.find((kept) => position >= kept.start && position < kept.start + kept.length);
  }

  /**
   * Creates the file: for O_DIRECT writes if wanted and taken, with a second handle reading through the
   * page cache (O_DIRECT reads would want aligned buffers and positions too); else one handle for both.
   */
  private async openHandles(): Promise<Handles> {
    if (this.wantsDirect && directWritesWanted() && alignedBuffers.usable()) {
      let writer: FileHandle | undefined;
      try {
        writer = await open(this.path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | O_DIRECT, 0o666);
      } catch (error) {
        if (!isCode(error, 'EINVAL')) throw error;
        // The file system takes no O_DIRECT; Linux creates the file before it says so.
        refuseDirectWrites();
        const handle = await open(this.path, 'w+');
        return { writer: handle, buffered: handle };
      }
      try {
        const buffered = await open(this.path, 'r+');
        this.direct = true;
        return { writer, buffered };
      } catch (error) {
        await writer.close().catch(() => undefined);
        throw error;
      }
    }
    const handle = await open(this.path, 'wx+');
    return { writer: handle, buffered: handle };
  }

  /** The file takes no more: `failed` gets the chunks of the write that failed and every one queued after them. */
  private breakWith(error: FillError, chunks: Buffer[]): void {
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
      const handles = this.handles;
      if (!handles) throw new Error('the temp file is not open');
      if (!this.direct) await writeThrough(handles.buffered, chunks, length, this.bytesWritten);
      else {
        try {
          await this.writeDirect(handles.writer, chunks, length);
        } catch (error) {
          if (!isCode(error, 'EINVAL')) throw error;
          // Refused for this file system or device: this file and every later one go through the page cache.
          refuseDirectWrites();
          this.direct = false;
          await writeThrough(handles.buffered, chunks, length, this.bytesWritten);
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

  /**
   * `chunks` (`length` bytes, from `bytesWritten` on, a whole number of blocks but at the end) copied
   * into aligned buffers and written a buffer at a time; a part block at the end is padded with zeros
   * and the file cut back to its length.
   */
  private async writeDirect(writer: FileHandle, chunks: readonly Buffer[], length: number): Promise<void> {
    const bytes = new ByteWindow(0);
    for (const chunk of chunks) bytes.append(chunk);
    let done = 0;
    while (done < length) {
      // The oldest buffer kept once there are enough: a fill never waits for the pool while it keeps some.
      const buffer = this.kept.length >= KEPT_PER_FILL ? this.kept.shift()!.buffer : await alignedBuffers.take();
      const start = this.bytesWritten + done;
      let count = 0;
      try {
        count = bytes.copyTo(done, buffer.subarray(0, Math.min(buffer.length, length - done)));
        const padded = Math.ceil(count / DIRECT_BLOCK) * DIRECT_BLOCK;
        buffer.fill(0, count, padded);
        await writeThrough(writer, [buffer.subarray(0, padded)], padded, start);
        if (padded > count) await writer.truncate(start + count);
      } catch (error) {
        alignedBuffers.give(buffer);
        throw error;
      }
      done += count;
      // Kept for the reader the fill keeps pace with, while the pool has buffers to spare.
      if (this.keepFrom !== Number.POSITIVE_INFINITY && !this.closed && alignedBuffers.spare) this.kept.push({ start, buffer, length: count });
      else alignedBuffers.give(buffer);
    }
  }
}

/** Writes `length` bytes of `chunks` at `position`, all of them. */
async function writeThrough(handle: FileHandle, chunks: readonly Buffer[], length: number, position: number): Promise<void> {
  let done = (await handle.writev(chunks as Buffer[], position)).bytesWritten;
  if (done < length) {
    // Short writes are rare on regular files, but a retry must not repeat bytes.
    const rest = Buffer.concat(chunks, length);
    while (done < length) done += (await handle.write(rest, done, length - done, position + done)).bytesWritten;
  }
}

async function closeHandles(handles: Handles): Promise<void> {
  await handles.writer.close();
  if (handles.buffered !== handles.writer) await handles.buffered.close();
}
