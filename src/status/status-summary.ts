import type { OperationsContext } from '../admin/operations-context.js';
import type { BudgetReading } from '../upstream/docker-hub-budget.js';
import type { ReplicaSummary } from './replica-summaries.js';
import { DAY_MS, HOUR_MS, WEEK_MS, type ImageUsage, type RecentError, type RequestHistory, type Totals } from './request-history.js';

/** One upstream registry's health, from the upstream series of /metrics. */
export interface UpstreamHealth {
  readonly registry: string;
  readonly requests: number;
  readonly errors: number;
  /** cause -> count. */
  readonly errorsByCause: Record<string, number>;
  /** Mean time to the answer's headers, in seconds; null before any answer. */
  readonly meanSeconds: number | null;
  /** The upper bound of the histogram bucket the 95th percentile falls in; null before any answer. */
  readonly p95Seconds: number | null;
  /** The 95th percentile is above the histogram's last bound (p95Seconds is that bound). */
  readonly p95Beyond: boolean;
}

/** Everything the status page shows, as numbers (status-view.ts formats them). */
export interface StatusSummary {
  readonly generatedAt: number;
  readonly replica: string;
  readonly since: number;
  readonly windows: { readonly hour: Totals; readonly day: Totals; readonly week: Totals };
  /** Since this process started, read from the same series /metrics exports. */
  readonly sinceStart: {
    /** cache result (hit, miss, stale, pass, denied) -> registry requests. */
    readonly requestsByCache: Record<string, number>;
    /** source (cache, upstream, peer) -> body bytes. */
    readonly bytesBySource: Record<string, number>;
    readonly evictions: number;
    readonly evictedBytes: number;
  };
  readonly cache: { readonly bytes: number; readonly maxSize: number; readonly entries: number; readonly activeFills: number };
  readonly upstreams: UpstreamHealth[];
  readonly dockerHub: BudgetReading[];
  readonly dockerHubLow: number;
  readonly topByPulls: ImageUsage[];
  readonly topByBytes: ImageUsage[];
  readonly recentErrors: RecentError[];
  /** Other replicas of a shared index seen lately, and this one; empty alone. */
  readonly replicas: ReplicaSummary[];
}

const TOP_IMAGES = 10;
const RECENT_ERRORS = 20;

/** Reads what the page shows: the history's windows and the live series of `context.metrics`. */
export async function summarize(context: OperationsContext, history: RequestHistory, replica: string, replicas: ReplicaSummary[] = []): Promise<StatusSummary> {
  const { metrics } = context;
  const [requests, bytes, evictions, evictedBytes, duration, upstreamErrors] = await Promise.all([
    metrics.requests.get(),
    metrics.bytesServed.get(),
    metrics.evictions.get(),
    metrics.evictedBytes.get(),
    metrics.upstreamDuration.get(),
    metrics.upstreamErrors.get(),
  ]);
  const requestsByCache: Record<string, number> = {};
  for (const { labels, value } of requests.values) {
    const cache = String(labels.cache ?? '');
    // Clients' requests: Layover's own pulls (prefetch) are reported by the prefetch.
    if (cache !== '' && labels.route !== 'prefetch') requestsByCache[cache] = (requestsByCache[cache] ?? 0) + value;
  }
  const stats = context.cache.stats();
  return {
    generatedAt: Date.now(),
    replica,
    since: history.since,
    windows: { hour: history.totals(HOUR_MS), day: history.totals(DAY_MS), week: history.totals(WEEK_MS) },
    sinceStart: {
      requestsByCache,
      bytesBySource: sumBy(bytes.values, 'source'),
      evictions: sum(evictions.values),
      evictedBytes: sum(evictedBytes.values),
    },
    cache: { bytes: stats.bytes, maxSize: stats.maxSize, entries: stats.entries, activeFills: stats.activeFills },
    upstreams: upstreamHealth(duration.values, upstreamErrors.values),
    dockerHub: context.dockerHubBudget.readings(),
    dockerHubLow: context.config.dockerHubBudgetLow,
    topByPulls: history.topImages('pulls', TOP_IMAGES),
    topByBytes: history.topImages('bytes', TOP_IMAGES),
    recentErrors: history.recentErrors(RECENT_ERRORS),
    replicas,
  };
}

type Sample = { value: number; labels: Partial<Record<string, string | number>>; metricName?: string };

function sum(values: readonly Sample[]): number {
  return values.reduce((total, { value }) => total + value, 0);
}

function sumBy(values: readonly Sample[], label: string): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const { labels, value } of values) {
    const key = String(labels[label] ?? '');
    sums[key] = (sums[key] ?? 0) + value;
  }
  return sums;
}

function upstreamHealth(duration: readonly Sample[], errors: readonly Sample[]): UpstreamHealth[] {
  const byRegistry = new Map<string, { count: number; sum: number; buckets: Array<[number, number]>; errorsByCause: Record<string, number> }>();
  const of = (registry: string) => {
    let entry = byRegistry.get(registry);
    if (!entry) byRegistry.set(registry, (entry = { count: 0, sum: 0, buckets: [], errorsByCause: {} }));
    return entry;
  };
  for (const { labels, value, metricName } of duration) {
    const entry = of(String(labels.registry ?? ''));
    if (metricName?.endsWith('_count')) entry.count += value;
    else if (metricName?.endsWith('_sum')) entry.sum += value;
    else if (metricName?.endsWith('_bucket')) entry.buckets.push([labels.le === '+Inf' ? Infinity : Number(labels.le), value]);
  }
  for (const { labels, value } of errors) {
    const cause = String(labels.cause ?? 'other');
    const entry = of(String(labels.registry ?? ''));
    entry.errorsByCause[cause] = (entry.errorsByCause[cause] ?? 0) + value;
  }
  return [...byRegistry]
    .filter(([, e]) => e.count > 0 || Object.keys(e.errorsByCause).length > 0)
    .map(([registry, e]) => {
      const bounds = e.buckets.sort((a, b) => a[0] - b[0]);
      const p95 = e.count > 0 ? (bounds.find(([, below]) => below >= 0.95 * e.count)?.[0] ?? Infinity) : null;
      const lastFinite = bounds.filter(([le]) => le !== Infinity).at(-1)?.[0] ?? null;
      return {
        registry,
        requests: e.count,
        errors: Object.values(e.errorsByCause).reduce((a, b) => a + b, 0),
        errorsByCause: e.errorsByCause,
        meanSeconds: e.count > 0 ? e.sum / e.count : null,
        p95Seconds: p95 === Infinity ? lastFinite : p95,
        p95Beyond: p95 === Infinity,
      };
    })
    .sort((a, b) => a.registry.localeCompare(b.registry));
}
