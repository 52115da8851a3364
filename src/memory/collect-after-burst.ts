import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8 collects when it allocates, never when the process is idle: after a burst of downloads the
 * buffers that carried it (upstream records held until written, send buffers let go by their pools)
 * are dead but still resident, tens of MB, until traffic comes back. One full collection once a burst
 * has ended gives them back. Not more often than this: a collection of Layover's heap is a pause of a
 * few milliseconds, and a pull's blobs may come with gaps between them.
 */
const MIN_INTERVAL_MS = 10_000;
/** Below this much more memory in buffers than after the last collection, there is nothing worth a pause. */
const MIN_BUFFER_GROWTH = 16 * 1024 * 1024;
/**
 * V8 frees the dead buffers of a collection on a thread of its own (concurrent sweeping), so right
 * after `gc()` they still count; the level they fall to is read again this long after.
 */
export const SWEEP_SETTLE_MS = 1_000;

/** V8's `gc`, reached without `--expose-gc` on the command line: the flag holds for contexts made after it is set. */
function exposedGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

let gc: ReturnType<typeof exposedGc> | null = null;
let lastCollection = Number.NEGATIVE_INFINITY;
let buffersAfterLast = 0;
let collections = 0;

/**
 * A burst of blob traffic has just ended: one full collection if buffers grew by MIN_BUFFER_GROWTH
 * since the last one, and none ran within MIN_INTERVAL_MS.
 */
export function collectAfterBurst(now = performance.now()): void {
  if (now - lastCollection < MIN_INTERVAL_MS) return;
  if (process.memoryUsage().arrayBuffers - buffersAfterLast < MIN_BUFFER_GROWTH) return;
  if (gc === null) gc = exposedGc();
  if (!gc) return;
  lastCollection = now;
  collections += 1;
  // Full and synchronous for the heap; the buffers outside it are freed a moment later.
  gc();
  buffersAfterLast = process.memoryUsage().arrayBuffers;
  // Measured too early, the level would hide the next burst's growth behind this one's dead buffers.
  setTimeout(() => {
    buffersAfterLast = Math.min(buffersAfterLast, process.memoryUsage().arrayBuffers);
  }, SWEEP_SETTLE_MS).unref();
}

/** For tests: how many collections ran. */
export function collectionsForTests(): number {
  return collections;
}
