import type { FastifyBaseLogger } from 'fastify';
import { ThrottledLog } from './throttled-log.js';

/**
 * How long one call to a shared index backend (Redis, Postgres) may take: as long as connecting to it
 * may. A healthy backend answers in milliseconds (a write is at most one batch of 1,000 rows, a load
 * page as many); one that accepts connections and then says nothing (a stopped process, a network
 * that drops packets) would otherwise hold the write queue, and every request awaiting a record or a
 * lease, forever.
 */
export const BACKEND_CALL_TIMEOUT_MS = 5_000;
/** While the backend is silent, how often a probe (where there is one) asks whether it answers again. */
const PROBE_INTERVAL_MS = 1_000;
const SILENT = 'cache index: the backend did not answer in time; its calls fail at once until it answers again';

/** A call to a shared index backend that got no answer within its bound; it is treated as unreachable. */
export class BackendTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';

  constructor(message: string) {
    super(message);
    this.name = 'BackendTimeoutError';
  }
}

/**
 * Rejects with a BackendTimeoutError when `pending` has not settled within `ms`; `late` is told if it
 * settles after that. The pending call itself cannot be cancelled: it is only no longer waited for.
 */
export function withinDeadline<T>(pending: Promise<T>, ms: number, what: string, late?: (answered: boolean) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new BackendTimeoutError(`${what} did not answer within ${ms} ms`));
    }, ms);
    pending
      .then((value) => {
        clearTimeout(timer);
        if (timedOut) late?.(true);
        else resolve(value);
      })
      .catch((error: unknown) => {
        clearTimeout(timer);
        if (timedOut) late?.(false);
        else reject(error);
      });
  });
}

/**
 * Bounds every call to one shared backend. A call that misses its bound rejects as an unreachable
 * backend's would; from then on calls fail at once (instead of each waiting out a bound of its own,
 * one after another in the write queue) until the backend is heard from again: a late answer, the
 * owner's `answered()` (a connection that became ready, a keep-alive ping that came back), or a
 * `probe` that answers within the bound.
 */
export class BoundedCalls {
  private readonly backend: string;
  private readonly logger: FastifyBaseLogger;
  private readonly throttled: ThrottledLog;
  private readonly probe: (() => Promise<unknown>) | undefined;
  private readonly timeoutMs: number;
  private silent = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(backend: string, logger: FastifyBaseLogger, options: { probe?: () => Promise<unknown>; timeoutMs?: number } = {}) {
    this.backend = backend;
    this.logger = logger;
    this.throttled = new ThrottledLog(logger);
    this.probe = options.probe;
    this.timeoutMs = options.timeoutMs ?? BACKEND_CALL_TIMEOUT_MS;
  }

  /** False from a missed bound until the backend answers again. */
  get answering(): boolean {
    return !this.silent;
  }

  run<T>(call: () => Promise<T>): Promise<T> {
    if (this.silent) return Promise.reject(new BackendTimeoutError(`${this.backend} has not answered since a call timed out after ${this.timeoutMs} ms`));
    return this.bound(call());
  }

  /** The backend answered (outside of `run`): calls go to it again. */
  answered(): void {
    if (!this.silent) return;
    this.silent = false;
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.throttled.reset(SILENT);
    this.logger.info({ backend: this.backend }, 'cache index: the backend answers again');
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
  }

  private bound<T>(pending: Promise<T>): Promise<T> {
    return withinDeadline(pending, this.timeoutMs, this.backend, (answered) => {
      if (answered) this.answered();
    }).catch((error: unknown) => {
      if (error instanceof BackendTimeoutError) this.wentSilent();
      throw error;
    });
  }

  private wentSilent(): void {
    if (this.silent) return;
    this.silent = true;
    this.throttled.error({ backend: this.backend, timeoutMs: this.timeoutMs }, SILENT);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    const probe = this.probe;
    if (!probe || this.closed || !this.silent || this.probeTimer !== undefined) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      this.bound(probe())
        .then(() => this.answered())
        .catch(() => this.scheduleProbe());
    }, PROBE_INTERVAL_MS);
    // A probe alone must not keep a process alive that has nothing else to do.
    this.probeTimer.unref();
  }
}
