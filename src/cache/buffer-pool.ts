import { freeNow } from '../memory/free-now.js';

/**
 * Read buffers handed back and reused. A blob hit read into a fresh 1 MiB `Buffer.allocUnsafe` per
 * chunk made V8 count a GiB of external memory per GiB served, which forced about 20 full garbage
 * collections per warm GiB and let RSS climb with the load; a few buffers in rotation cost nothing.
 * The pool keeps at most `maxFree` buffers; a buffer never given back is simply collected. One given
 * back to a full pool, or let go by `clear`, is freed at once (its memory detached): left to the
 * collector, a 256 KiB or 1 MiB buffer waited for the next full collection, which V8 starts by the
 * external memory waiting, so under 100 clients RSS swung by tens of MB with the buffers dropped
 * whenever the number of downloads changed the chunk size.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  readonly bufferSize: number;
  private readonly maxFree: number;

  constructor(bufferSize: number, maxFree: number) {
    this.bufferSize = bufferSize;
    this.maxFree = maxFree;
  }

  take(): Buffer {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool that others hold.
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
  }

  /** Only once nothing reads `buffer` any more: it is handed out again as is, or freed. */
  give(buffer: Buffer): void {
    if (buffer.length !== this.bufferSize) return;
    if (this.free.length < this.maxFree) this.free.push(buffer);
    else freeNow(buffer);
  }

  /** Frees every free buffer: nothing is being sent that would take them again soon. */
  clear(): void {
    for (const buffer of this.free) freeNow(buffer);
    this.free.length = 0;
  }

  get freeCount(): number {
    return this.free.length;
  }
}
