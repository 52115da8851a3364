import { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { collectAfterBurst } from '../memory/collect-after-burst.js';
import { BufferPool } from './buffer-pool.js';
import { IO_CHUNK } from './durable-files.js';

/**
 * Buffers of blobs being sent (hits and followers of a fill), for the whole process: two per download
 * (one being written, one being filled). Up to 24 downloads send 1 MiB at a time (fewer system calls
 * and TLS records per byte); beyond that the chunks shrink so that up to 384 downloads at once hold no
 * more than 24 do (each buffer also costs its encrypted copy in the TLS socket until the kernel takes
 * it). Past 384 it grows by 128 KiB a download.
 */
const SEND_BUDGET_BYTES = 48 * IO_CHUNK;
const MIN_CHUNK = 64 * 1024;
const pools = [IO_CHUNK, 256 * 1024, MIN_CHUNK].map((size) => new BufferPool(size, SEND_BUDGET_BYTES / size / 4));
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

/** The chunk size that keeps `downloads` downloads' two buffers each within the budget (64 KiB at least). */
export function chunkBytesFor(downloads: number): number {
  return (pools.find((pool) => downloads * 2 * pool.bufferSize <= SEND_BUDGET_BYTES) ?? pools[pools.length - 1]!).bufferSize;
}

/** A buffer of the size the downloads under way call for; it goes back with `giveBack`. */
export function takeSendBuffer(): Buffer {
  const size = chunkBytesFor(sending);
  return pools.find((pool) => pool.bufferSize === size)!.take();
}

/** To the pool of its size (a buffer taken while fewer were sending may come back when more are). */
export function giveBack(buffer: Buffer): void {
  pools.find((pool) => pool.bufferSize === buffer.length)?.give(buffer);
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
