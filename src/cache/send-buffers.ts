import { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { collectAfterBurst } from '../memory/collect-after-burst.js';
import { freeNow } from '../memory/free-now.js';
import { BufferPool } from './buffer-pool.js';
import { IO_CHUNK } from './durable-files.js';

/**
 * Buffers of blobs being sent (hits and followers of a fill), for the whole process: two per download
 * (one being written, one being filled; a hit alone three, chunksInFlightFor). A download alone sends
 * 256 KiB at a time: it is bound by how its chunks follow each other through our encryption, the
 * kernel and the client's decryption, not by CPU: 256 KiB took 0.80-1.04 s per warm GiB, median
 * 0.88, over five bench runs against 0.91-1.04, median 0.95, at 1 MiB over three (AMD EPYC), for
 * about a fifth more CPU. Two to 4 downloads send 1 MiB: fewer system calls and TLS writes per byte
 * once they share the cores. More downloads send smaller chunks, within SEND_BUDGET_BYTES together
 * (each buffer also costs its encrypted copy in the TLS socket until the kernel takes it): 8 warm
 * downloads at 1 MiB took the 8-client bench's peak RSS to 148-151 MB, at 512 KiB to 139-141 MB. Past
 * 384 downloads it grows by 128 KiB a download.
 */
const SEND_BUDGET_BYTES = 48 * IO_CHUNK;
const TIERS: ReadonlyArray<{ readonly size: number; readonly upTo: number }> = [
  { size: 256 * 1024, upTo: 1 },
  { size: IO_CHUNK, upTo: 4 },
  { size: 512 * 1024, upTo: 48 },
  { size: 256 * 1024, upTo: 96 },
  { size: 64 * 1024, upTo: Number.POSITIVE_INFINITY },
];
/** One pool per chunk size (two tiers send 256 KiB). */
const pools = [...new Set(TIERS.map((tier) => tier.size))].map((size) => new BufferPool(size, SEND_BUDGET_BYTES / size / 4));
/**
 * Once nothing has been sent for this long the pools let their buffers go: a burst of downloads must
 * not hold its megabytes in RSS for good, while the blobs of one pull, sent one after the other, still
 * take them again.
 */
export const IDLE_RELEASE_MS = 2_000;
let sending = 0;
let idleRelease: NodeJS.Timeout | undefined;

function releaseWhenIdle(): void {
  if (sending > 0) return;
  clearTimeout(idleRelease);
  idleRelease = setTimeout(() => {
    if (sending > 0) return;
    for (const pool of pools) pool.clear();
    // The burst is over: what carried it (these buffers, the fills' records) is garbage now.
    collectAfterBurst();
  }, IDLE_RELEASE_MS);
  idleRelease.unref();
}

/** For tests: buffers the pools hold for the next sends. */
export function freeSendBuffersForTests(): number {
  return pools.reduce((sum, pool) => sum + pool.freeCount, 0);
}

/** The chunk size for `downloads` downloads at once: their two buffers each stay within the budget (64 KiB at least). */
export function chunkBytesFor(downloads: number): number {
  return TIERS.find((tier) => downloads <= tier.upTo)!.size;
}

/**
 * Chunks a download keeps written and not yet taken by its socket: 2 for a download alone (the next
 * chunk is encrypted and queued while the one before is still going out; warm 1 GiB 0.81-1.06 s,
 * median 0.85, over four bench runs against 0.80-1.04, median 0.87, over six with 1), 1 when more
 * share the cores and the budget.
 */
export function chunksInFlightFor(downloads: number): number {
  return downloads <= 1 ? 2 : 1;
}

/** A buffer of the size the downloads under way call for; it goes back with `giveBack`. */
export function takeSendBuffer(): Buffer {
  const size = chunkBytesFor(sending);
  return pools.find((pool) => pool.bufferSize === size)!.take();
}

/**
 * To the pool of its size while sends take that size; one of another size (taken while fewer or more
 * were sending) is freed at once: kept, it would sit in its pool beside the buffers sends take now.
 */
export function giveBack(buffer: Buffer): void {
  const pool = pools.find((candidate) => candidate.bufferSize === buffer.length);
  if (!pool) return;
  if (buffer.length === chunkBytesFor(sending)) pool.give(buffer);
  else freeNow(buffer);
}

/** Runs one download's `send`, counted among those that share the budget. */
export async function countedSend(send: () => Promise<void>): Promise<void> {
  sending += 1;
  try {
    await send();
  } finally {
    sending -= 1;
    releaseWhenIdle();
  }
}

export type Destination = NodeJS.WritableStream & { destroyed?: boolean; writableNeedDrain?: boolean };

/**
 * Whether `source.pipe(destination)` may write pooled buffers itself: only an HTTP/1 response is known
 * to be done with a chunk at write's callback (its socket has encrypted or sent it); a transform may
 * pass the very buffer on. Anything but a first, lone destination of an unread stream goes the
 * ordinary way too.
 */
export function sendsPooled(source: Readable, destination: NodeJS.WritableStream): destination is ServerResponse {
  return destination instanceof ServerResponse && source.readableFlowing === null && source.readableLength === 0 && !source.readableEnded;
}

/** How many downloads are being sent now (countedSend). */
export function downloadsSending(): number {
  return sending;
}

/**
 * A download's writes not yet confirmed by their callback (the socket still holds their chunk), and a
 * wait for the next confirmation that also ends when `destination` closes or fails (then no write of it
 * completes). One short-lived promise per wait: a Promise.race of each write against one promise that
 * lasted the whole download left a reaction on that promise per chunk, 312 bytes kept until the
 * download ended (5 MB for 8 downloads of 1 GiB, all of it promoted to V8's old generation).
 */
export class WriteWindow {
  #unconfirmed = 0;
  #gone = false;
  #wake: (() => void) | undefined;
  readonly #destination: Destination;

  constructor(destination: Destination) {
    this.#destination = destination;
    destination.on('close', this.#end);
    destination.on('error', this.#end);
  }

  /** Writes not yet confirmed. */
  get unconfirmed(): number {
    return this.#unconfirmed;
  }

  /** Whether the destination closed or failed. */
  get gone(): boolean {
    return this.#gone;
  }

  /** Writes `chunk`; `confirmed` runs at its callback, when the destination no longer holds it. */
  write(chunk: Buffer, confirmed: () => void): void {
    this.#unconfirmed += 1;
    this.#destination.write(chunk, () => {
      this.#unconfirmed -= 1;
      confirmed();
      this.#resume();
    });
  }

  /** Resolves at the next confirmation, or once the destination has closed or failed. */
  change(): Promise<void> {
    if (this.#gone) return Promise.resolve();
    return new Promise((resolve) => (this.#wake = resolve));
  }

  /** Stops listening to the destination. */
  dispose(): void {
    this.#destination.off('close', this.#end);
    this.#destination.off('error', this.#end);
  }

  readonly #end = (): void => {
    this.dispose();
    this.#gone = true;
    this.#resume();
  };

  #resume(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Resolves once `destination` takes writes again, or can take none any more. */
export function drained(destination: Destination): Promise<void> {
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
