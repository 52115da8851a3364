import { constants } from 'node:fs';
import { IO_CHUNK } from './durable-files.js';

/**
 * Why a fill writes its temp file with O_DIRECT: a buffered write of a new file takes a page of the
 * page cache for every 4 KiB, and on a server whose page cache is full (any server that has run a
 * while), or a VM whose host took free memory back, each of those pages costs a reclaim or a first
 * touch. A cold GiB spent 2.6-2.9 s of system time that way on the bench machine, more than the
 * transfer itself; written straight to the disk it takes 0.1-0.2 CPU-s. The blob is read back through
 * the page cache as before (hits, and readers behind a fill), so the pages go to what is read.
 *
 * O_DIRECT wants the file position, the length and the memory aligned to the device's block:
 * DIRECT_BLOCK covers devices with 4 KiB logical blocks (most take 512). Node's buffers come from
 * malloc, aligned to 16 bytes only; a WebAssembly memory is mapped at a page boundary, so the aligned
 * buffers are carved out of one.
 */
export const DIRECT_BLOCK = 4096;

/** The O_DIRECT flag; 0 where the platform has none (then no write is direct). */
export const O_DIRECT: number = constants.O_DIRECT ?? 0;

/**
 * Aligned buffers in the pool: a fill holds one while one write of its is on its way, and keeps up to
 * KEPT_PER_FILL written ones for its reader (src/cache/temp-file.ts) while more than SPARE_SLOTS are free.
 */
const SLOTS = 16;
export const KEPT_PER_FILL = 3;
const SPARE_SLOTS = 4;
const WASM_PAGE = 64 * 1024;

interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
type WasmMemoryConstructor = new (descriptor: { initial: number; maximum: number }) => WasmMemory;

let refused = O_DIRECT === 0;

/** Whether fills should try O_DIRECT: not once a write was refused for it (a file system or device that does not take it). */
export function directWritesWanted(): boolean {
  return !refused;
}

/** An O_DIRECT write was refused (EINVAL): every later fill writes through the page cache. */
export function refuseDirectWrites(): void {
  refused = true;
}

/**
 * SLOTS buffers of IO_CHUNK bytes, each starting at a multiple of DIRECT_BLOCK, handed out one at a
 * time; a taker waits while all are out. Created at the first take and kept (16 MiB, of which only the
 * buffers ever used at once become resident: the last given back is the first taken again).
 */
class AlignedBuffers {
  private free: Buffer[] | undefined;
  private readonly waiting: Array<(buffer: Buffer) => void> = [];

  /** Whether the buffers exist or can be made (a process without WebAssembly, --jitless, has none): then O_DIRECT is refused. */
  usable(): boolean {
    try {
      this.free ??= carve();
      return true;
    } catch {
      refuseDirectWrites();
      return false;
    }
  }

  /** Only after `usable` said yes. */
  async take(): Promise<Buffer> {
    const buffer = this.free?.pop();
    if (buffer) return buffer;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Whether a written buffer may be kept for a reader: writes must never wait for kept ones. */
  get spare(): boolean {
    return (this.free?.length ?? 0) > SPARE_SLOTS;
  }

  give(buffer: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.free?.push(buffer);
  }
}

function carve(): Buffer[] {
  const Memory = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly.Memory;
  const pages = (SLOTS * IO_CHUNK) / WASM_PAGE;
  const memory = new Memory({ initial: pages, maximum: pages });
  return Array.from({ length: SLOTS }, (_, slot) => Buffer.from(memory.buffer, slot * IO_CHUNK, IO_CHUNK));
}

export const alignedBuffers = new AlignedBuffers();
