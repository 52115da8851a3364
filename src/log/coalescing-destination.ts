import { writeSync } from 'node:fs';

/** Where the coalesced lines go: pino's SonicBoom on stdout (pino.destination). */
export interface LineSink {
  write(data: string): unknown;
  flush?(callback?: (error?: Error) => void): void;
  flushSync(): void;
  readonly destroyed?: boolean;
}

/** At most one write of collected lines per this long while lines keep coming. */
export const WRITE_INTERVAL_MS = 10;
/**
 * Lines handed over one by one in each interval before the rest wait for its end: enough for a
 * request or two to show at once; at 16, cached manifests cost about 2 µs more CPU each under load
 * (bench/README.md), the first lines of every interval each making a write of their own.
 */
export const BURST_LINES = 4;
/** Written at once when this much (in characters) waits, whatever the interval says. */
export const MAX_PENDING_CHARS = 64 * 1024;

/** Every destination still alive, flushed once at exit (one listener for all). */
const live = new Set<WeakRef<CoalescingDestination>>();
process.on('exit', () => {
  for (const ref of live) {
    try {
      ref.deref()?.flushSync();
    } catch {
      // stdout is gone (a closed pipe): nothing left to write to.
    }
  }
});

/**
 * pino's destination for JSON lines, handing them to the sink (SonicBoom, one asynchronous write in
 * flight) one by one while they are few: the first BURST_LINES of every WRITE_INTERVAL_MS go at
 * once, and the lines beyond them wait for the interval's end (or until MAX_PENDING_CHARS wait) and
 * go together. Under load, a write for every line or two cost each request about 18 µs of a cached
 * manifest's CPU in thread-pool hand-offs, wake-ups and system calls (bench/README.md); collected,
 * it is a few writes per interval. SonicBoom's own `minLength` collects too, but grows one string by
 * appending and measures it again on every line. A line waits at most WRITE_INTERVAL_MS; at exit
 * (process 'exit', `flushSync`, `flush`) nothing waits.
 */
export class CoalescingDestination {
  readonly #sink: LineSink;
  readonly #fd: number;
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: NodeJS.Timeout | undefined;
  #windowStart = Number.NEGATIVE_INFINITY;
  #handedOver = 0;
  readonly #burstLines: number;

  /** `fd`: the sink's descriptor, written directly should the sink be closed already at exit; `burstLines`: see BURST_LINES. */
  constructor(sink: LineSink, fd: number, burstLines = BURST_LINES) {
    this.#sink = sink;
    this.#fd = fd;
    this.#burstLines = burstLines;
    live.add(new WeakRef(this));
  }

  write(line: string): boolean {
    this.#pending.push(line);
    this.#pendingChars += line.length;
    if (this.#timer !== undefined) {
      if (this.#pendingChars >= MAX_PENDING_CHARS) this.#handOver();
      return true;
    }
    const now = performance.now();
    if (now - this.#windowStart >= WRITE_INTERVAL_MS) {
      this.#windowStart = now;
      this.#handedOver = 0;
    }
    if (this.#handedOver < this.#burstLines || this.#pendingChars >= MAX_PENDING_CHARS) {
      this.#handedOver += 1;
      this.#handOver();
      return true;
    }
    this.#timer = setTimeout(() => {
      // The interval ends with its batch: a timer may come a little early (whole milliseconds), and a
      // line just after it would otherwise start a second batch in the same interval.
      this.#windowStart = Number.NEGATIVE_INFINITY;
      this.#handOver();
    }, this.#windowStart + WRITE_INTERVAL_MS - now);
    // The exit listener writes what waits; the timer alone must not keep a process alive.
    this.#timer.unref();
    return true;
  }

  /** Hands what waits to the sink, then lets the sink write it (asynchronously). */
  flush(callback?: (error?: Error) => void): void {
    this.#handOver();
    if (this.#sink.flush) this.#sink.flush(callback);
    else callback?.();
  }

  /** Writes what waits before returning (exit, a fatal error). */
  flushSync(): void {
    if (this.#sink.destroyed) {
      const data = this.#take();
      if (data !== undefined) writeSync(this.#fd, data);
      return;
    }
    this.#handOver();
    this.#sink.flushSync();
  }

  #handOver(): void {
    const data = this.#take();
    if (data === undefined) return;
    this.#sink.write(data);
  }

  /** The waiting lines as one string (undefined when none), and the timer stopped. */
  #take(): string | undefined {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return undefined;
    const data = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('');
    this.#pending = [];
    this.#pendingChars = 0;
    return data;
  }
}
