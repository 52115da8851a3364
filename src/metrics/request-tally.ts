import type { CompletedRequest } from './metrics.js';

/** The longest a tallied request waits to be counted when nothing reads the counts meanwhile. */
export const TALLY_FLUSH_MS = 1_000;

/**
 * Completed requests counted in batches: the same request object (a cached hit's, made once and
 * answered again and again) is counted n times in one call instead of once per request, which cost
 * a cached manifest about a tenth of its CPU in label hashing and history arithmetic (bench/README.md).
 * Whoever reads the counts flushes first; otherwise they are counted within TALLY_FLUSH_MS. Only
 * for request objects that are reused: each distinct object is one entry until the flush.
 */
export class RequestTally {
  readonly #count: (request: CompletedRequest, times: number) => void;
  readonly #pending = new Map<CompletedRequest, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(count: (request: CompletedRequest, times: number) => void) {
    this.#count = count;
  }

  add(request: CompletedRequest): void {
    this.#pending.set(request, (this.#pending.get(request) ?? 0) + 1);
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => this.flush(), TALLY_FLUSH_MS);
    // Counts left when the process ends are lost with the rest of its metrics.
    this.#timer.unref();
  }

  /** Counts what waits, now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const [request, times] of this.#pending) this.#count(request, times);
    this.#pending.clear();
  }
}
