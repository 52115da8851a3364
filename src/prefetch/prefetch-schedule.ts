import type { OperationsContext } from '../admin/operations-context.js';
import { Prefetcher } from './prefetcher.js';

export interface PrefetchSchedule {
  stop(): Promise<void>;
}

/** Node fires a longer timer at once: a PREFETCH_INTERVAL of 60d would otherwise run rounds back to back. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PrefetchScheduleOptions {
  /** For tests: how long one image may take (default: the prefetcher's). */
  readonly imageDeadlineMs?: number;
}

/**
 * The configured `prefetch:` list (PREFETCH), pulled at start and again PREFETCH_INTERVAL after each
 * round ends, so rounds never overlap; every platform, with referrers when PREFETCH_REFERRERS is on.
 * Runs in the background and logs one line per round. stop() ends a round in progress at once (the
 * fills it began belong to the cache, which closeApp waits for) and resolves once it has ended.
 */
export function startPrefetchSchedule(context: OperationsContext, options: PrefetchScheduleOptions = {}): PrefetchSchedule {
  const { images, intervalMs, referrers } = context.config.prefetch;
  if (images.length === 0) return { stop: async () => {} };
  const prefetcher = new Prefetcher({ https: context.https, config: context.config, cache: context.cache, ...options });
  const stopping = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let round: Promise<void> | null = null;
  let rounds = 0;

  const runRound = async (): Promise<void> => {
    const started = performance.now();
    const number = ++rounds;
    const summary = await prefetcher.run({ images, platform: null, referrers }, () => undefined, { stopStarting: stopping.signal, abort: stopping.signal });
    const fields = { round: number, images: images.length, ok: summary.ok.length, failed: summary.failed, bytes: summary.totals.bytes, blobs: summary.totals.blobs, ms: Math.round(performance.now() - started) };
    if (summary.failed.length > 0) context.logger.warn(fields, 'prefetch round done, with failures');
    else context.logger.info(fields, 'prefetch round done');
  };
  const schedule = (delayMs: number): void => {
    if (stopping.signal.aborted) return;
    const due = Date.now() + delayMs;
    timer = setTimeout(() => {
      timer = null;
      // A delay above what one timer can hold is waited out in steps.
      if (Date.now() < due) return schedule(due - Date.now());
      round = runRound()
        .catch((error: unknown) => context.logger.error({ err: error }, 'prefetch round failed'))
        .finally(() => {
          round = null;
          schedule(intervalMs);
        });
    }, Math.min(delayMs, MAX_TIMER_MS));
    // The schedule alone keeps no process alive (a CLI that built the app and is done may exit).
    timer.unref();
  };
  schedule(0);

  return {
    async stop() {
      stopping.abort(new Error('Layover is stopping'));
      if (timer) clearTimeout(timer);
      timer = null;
      await round;
    },
  };
}
