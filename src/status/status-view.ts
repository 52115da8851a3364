import type { Totals } from './request-history.js';
import type { StatusSummary } from './status-summary.js';

/** One number on the page: its text, and the raw value behind it (`data-value`, for tests and scripts). */
export interface ShownMetric {
  readonly text: string;
  readonly value: number | null;
}

/**
 * What the page shows, already formatted: the server renders it into HTML and /status.json sends it
 * to the page's script, so both show the same thing written once. Keys are the `data-metric` and
 * `data-table` names of the page's elements.
 */
export interface StatusView {
  readonly generatedAt: number;
  readonly replica: string;
  readonly metrics: Record<string, ShownMetric>;
  readonly tables: Record<string, string[][]>;
}

export const WINDOWS = ['hour', 'day', 'week'] as const;
export const SINCE_START_RESULTS = ['hit', 'miss', 'stale', 'pass', 'denied'] as const;
export const BYTE_SOURCES = ['cache', 'upstream', 'peer'] as const;

export function statusView(summary: StatusSummary): StatusView {
  const metrics: Record<string, ShownMetric> = {};
  const count = (key: string, value: number): void => void (metrics[key] = { text: formatCount(value), value });
  const bytes = (key: string, value: number): void => void (metrics[key] = { text: formatBytes(value), value });
  const ratio = (key: string, value: number | null): void => void (metrics[key] = { text: formatRatio(value), value });
  for (const window of WINDOWS) {
    const totals = summary.windows[window];
    ratio(`${window}-hit-ratio`, hitRatio(totals));
    bytes(`${window}-bytes-saved`, totals.bytesFromCache);
    bytes(`${window}-bytes-from-upstream`, totals.bytesFromUpstream);
    count(`${window}-requests`, totals.requests);
    count(`${window}-hits`, totals.hits);
    count(`${window}-misses`, totals.misses);
    count(`${window}-errors`, totals.errors);
    count(`${window}-evictions`, totals.evictions);
    bytes(`${window}-evicted-bytes`, totals.evictedBytes);
  }
  const { sinceStart, cache } = summary;
  for (const result of SINCE_START_RESULTS) count(`requests-${result}`, sinceStart.requestsByCache[result] ?? 0);
  for (const source of BYTE_SOURCES) bytes(`bytes-from-${source}`, sinceStart.bytesBySource[source] ?? 0);
  count('evictions-total', sinceStart.evictions);
  bytes('evicted-bytes-total', sinceStart.evictedBytes);
  bytes('cache-bytes', cache.bytes);
  bytes('cache-max-bytes', cache.maxSize);
  ratio('cache-used', cache.maxSize > 0 ? cache.bytes / cache.maxSize : null);
  count('cache-entries', cache.entries);
  count('fills-in-flight', cache.activeFills);
  metrics['history-since'] = { text: formatTime(summary.since), value: summary.since };
  metrics['generated-at'] = { text: formatTime(summary.generatedAt), value: summary.generatedAt };

  const tables: Record<string, string[][]> = {
    upstreams: summary.upstreams.map((u) => [
      u.registry,
      formatCount(u.requests),
      Object.entries(u.errorsByCause).map(([cause, n]) => `${cause} ${formatCount(n)}`).join(', ') || '0',
      formatSeconds(u.meanSeconds),
      u.p95Beyond ? `> ${formatSeconds(u.p95Seconds)}` : formatSeconds(u.p95Seconds),
    ]),
    'docker-hub': summary.dockerHub.map((r) => [
      r.account,
      r.source || '–',
      `${formatCount(r.remaining)} / ${formatCount(r.limit)}`,
      r.windowSeconds === null ? '–' : formatDuration(r.windowSeconds * 1000),
      r.remaining < summary.dockerHubLow ? 'low: cached tags first' : 'ok',
      formatTime(r.at),
    ]),
    'top-by-pulls': summary.topByPulls.map((u) => [u.image, formatCount(u.pulls), formatBytes(u.bytes), formatTime(u.lastAt)]),
    'top-by-bytes': summary.topByBytes.map((u) => [u.image, formatBytes(u.bytes), formatCount(u.pulls), formatTime(u.lastAt)]),
    'recent-errors': summary.recentErrors.map((e) => [formatTime(e.at), e.registry || '–', e.repository || '–', e.route, String(e.status), e.message]),
    replicas: summary.replicas.map((r) => [
      r.name === summary.replica ? `${r.name} (this one)` : r.name,
      formatDuration(Math.max(0, summary.generatedAt - r.at)),
      WINDOWS.map((w) => formatRatio(hitRatio(r.windows[w]))).join(' / '),
      formatBytes(r.windows.day.bytesFromCache),
      formatCount(r.windows.hour.requests),
      formatCount(r.windows.hour.errors),
      `${formatBytes(r.cache.bytes)} / ${formatBytes(r.cache.maxSize)}`,
    ]),
  };
  return { generatedAt: summary.generatedAt, replica: summary.replica, metrics, tables };
}

/** Answered from the cache, among the requests that had to be answered from somewhere (hit, stale or miss). */
export function hitRatio(totals: Totals): number | null {
  const decided = totals.hits + totals.misses;
  return decided === 0 ? null : totals.hits / decided;
}

function formatCount(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function formatRatio(value: number | null): string {
  return value === null ? '–' : `${(value * 100).toFixed(1)} %`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(value: number): string {
  let unit = 0;
  let shown = value;
  while (shown >= 1024 && unit < UNITS.length - 1) {
    shown /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${shown.toFixed(1)} ${UNITS[unit]}`;
}

function formatSeconds(value: number | null): string {
  if (value === null) return '–';
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

/** UTC, to the second: replicas in other time zones show the same text. */
function formatTime(at: number): string {
  return `${new Date(at).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
