import type { CompletedRequest } from '../metrics/metrics.js';
import { redactUrl } from '../log/redact-url.js';
import { countOf, isCount, isObject, isTime } from './saved-values.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

/** What one time bucket counts. */
export interface Totals {
  /** Registry requests (Layover's own routes, the status page's refreshes among them, are not counted). */
  requests: number;
  /** Answered from the cache (hit or stale). */
  hits: number;
  misses: number;
  /** Body bytes sent from the cache (or relayed by another replica): what the upstream did not have to send. */
  bytesFromCache: number;
  bytesFromUpstream: number;
  errors: number;
  evictions: number;
  evictedBytes: number;
}

interface Bucket extends Totals {
  /** Date.now() at the bucket's start (a whole minute or hour). */
  start: number;
}

export interface ImageUsage {
  /** `registry/repository`. */
  readonly image: string;
  pulls: number;
  bytes: number;
  lastAt: number;
}

export interface RecentError {
  readonly at: number;
  readonly registry: string;
  readonly repository: string;
  readonly route: string;
  readonly status: number;
  readonly message: string;
}

/** The history as saved in the cache's records: plain JSON. */
export interface HistorySnapshot {
  readonly version: 1;
  readonly since: number;
  readonly minutes: Bucket[];
  readonly hours: Bucket[];
  readonly images: ImageUsage[];
  readonly errors: RecentError[];
}

export interface RequestHistoryOptions {
  now?: () => number;
  /** Repositories kept in the top-images table; the least used are dropped beyond it. */
  maxImages?: number;
  maxErrors?: number;
}

const DEFAULT_MAX_IMAGES = 1_000;
const DEFAULT_MAX_ERRORS = 50;
const MINUTES_KEPT = 60;
const HOURS_KEPT = 7 * 24;
// Strings that came from outside are cut to this before they are kept (and shown).
const MAX_TEXT = 300;

const emptyTotals = (): Totals => ({ requests: 0, hits: 0, misses: 0, bytesFromCache: 0, bytesFromUpstream: 0, errors: 0, evictions: 0, evictedBytes: 0 });
const TOTAL_KEYS = Object.keys(emptyTotals()) as Array<keyof Totals>;

/** Adds `counts` to the bucket starting at `start`, the newest of `buckets` (at most `kept` of them). */
function addTo(buckets: Bucket[], start: number, kept: number, counts: Partial<Totals>): void {
  let bucket = buckets.at(-1);
  if (bucket?.start !== start) {
    bucket = { start, ...emptyTotals() };
    buckets.push(bucket);
    if (buckets.length > kept) buckets.splice(0, buckets.length - kept);
  }
  for (const key of TOTAL_KEYS) bucket[key] += counts[key] ?? 0;
}

/** Totals read back from saved JSON: every field a count, 0 where it is not. */
export function totalsOf(saved: unknown): Totals {
  const fields = isObject(saved) ? saved : {};
  const totals = emptyTotals();
  for (const key of TOTAL_KEYS) totals[key] = countOf(fields[key]);
  return totals;
}

/**
 * What the status page shows over time, in memory: per-minute buckets for the last hour and
 * per-hour buckets for the last week, the most pulled repositories and the last errors. Every part
 * is bounded, whatever arrives; a snapshot goes into the cache's records so that a restart keeps it.
 */
export class RequestHistory {
  readonly #now: () => number;
  readonly #maxImages: number;
  readonly #maxErrors: number;
  #since: number;
  #minutes: Bucket[] = [];
  #hours: Bucket[] = [];
  readonly #images = new Map<string, ImageUsage>();
  #errors: RecentError[] = [];
  /** Changed since the last snapshot was taken. */
  dirty = false;
  /** The minute #add last let old buckets go in. */
  #expiredInMinute = Number.NaN;

  constructor(options: RequestHistoryOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxImages = options.maxImages ?? DEFAULT_MAX_IMAGES;
    this.#maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
    this.#since = this.#now();
  }

  /** When counting began (kept across restarts). */
  get since(): number {
    return this.#since;
  }

  /** Counts a completed request, `times` alike (requests tallied in a batch, RequestTally). */
  record(request: CompletedRequest, times = 1): void {
    // Layover's own pulls (prefetch) are not what clients asked for: the prefetch reports them.
    if (request.route === 'prefetch') return;
    const at = this.#now();
    if (isError(request)) this.#addError(at, request);
    if (request.registry === undefined) return;
    const hit = request.cache === 'hit' || request.cache === 'stale';
    const source = request.source ?? (hit ? 'cache' : request.cache === 'miss' || request.cache === 'pass' ? 'upstream' : undefined);
    const bytes = request.bytes * times;
    this.#add(at, {
      requests: times,
      hits: hit ? times : 0,
      misses: request.cache === 'miss' ? times : 0,
      // As /metrics counts them by source; bytes another replica relayed did not come from the upstream either.
      bytesFromCache: source === 'cache' || source === 'peer' ? bytes : 0,
      bytesFromUpstream: source === 'upstream' ? bytes : 0,
      errors: isError(request) ? times : 0,
    });
    if (request.repository !== undefined && request.status < 400) this.#use(at, `${request.registry}/${request.repository}`, request.route === 'manifest' ? times : 0, bytes);
  }

  /** Evictions since the last call (the status board reads them off the eviction counters). */
  recordEvictions(evictions: number, evictedBytes: number): void {
    if (evictions > 0 || evictedBytes > 0) this.#add(this.#now(), { evictions, evictedBytes });
  }

  /** The sums over the last `windowMs` (at most a week): per-minute buckets up to an hour, per-hour beyond. */
  totals(windowMs: number): Totals {
    const now = this.#now();
    const [buckets, size] = windowMs <= HOUR_MS ? [this.#minutes, MINUTE_MS] : [this.#hours, HOUR_MS];
    // The bucket under way counts whole, so a window spans its length of whole buckets up to now.
    const from = bucketStart(now, size) - windowMs + size;
    const sum = emptyTotals();
    for (const bucket of buckets) {
      if (bucket.start < from || bucket.start > now) continue;
      for (const key of TOTAL_KEYS) sum[key] += bucket[key];
    }
    return sum;
  }

  /** The `count` most used repositories, by pulls (then bytes) or by bytes (then pulls). */
  topImages(by: 'pulls' | 'bytes', count: number): ImageUsage[] {
    const other = by === 'pulls' ? 'bytes' : 'pulls';
    return [...this.#images.values()]
      .filter((usage) => usage[by] > 0)
      .sort((a, b) => b[by] - a[by] || b[other] - a[other] || a.image.localeCompare(b.image))
      .slice(0, count)
      .map((usage) => ({ ...usage }));
  }

  /** The last errors, newest first. */
  recentErrors(count: number): RecentError[] {
    return this.#errors.slice(-count).reverse();
  }

  snapshot(): HistorySnapshot {
    this.#expire(this.#now());
    return {
      version: 1,
      since: this.#since,
      minutes: this.#minutes.map((b) => ({ ...b })),
      hours: this.#hours.map((b) => ({ ...b })),
      images: [...this.#images.values()].map((u) => ({ ...u })),
      errors: [...this.#errors],
    };
  }

  /**
   * Takes in a saved snapshot (from the cache's records, which another replica or an older version
   * may have written): whatever is not of the expected shape is left out, and the bounds hold.
   */
  restore(saved: unknown): void {
    if (!isObject(saved) || saved.version !== 1) return;
    if (isTime(saved.since)) this.#since = Math.min(this.#since, saved.since);
    this.#minutes = bucketsOf(saved.minutes, MINUTE_MS).slice(-MINUTES_KEPT);
    this.#hours = bucketsOf(saved.hours, HOUR_MS).slice(-HOURS_KEPT);
    this.#images.clear();
    for (const usage of Array.isArray(saved.images) ? saved.images.slice(0, this.#maxImages) : []) {
      if (isObject(usage) && typeof usage.image === 'string' && isCount(usage.pulls) && isCount(usage.bytes) && isTime(usage.lastAt)) {
        const image = clip(usage.image);
        this.#images.set(image, { image, pulls: usage.pulls, bytes: usage.bytes, lastAt: usage.lastAt });
      }
    }
    this.#errors = (Array.isArray(saved.errors) ? saved.errors : []).flatMap((e) => errorOf(e)).slice(-this.#maxErrors);
    this.#expire(this.#now());
  }

  #add(at: number, counts: Partial<Totals>): void {
    addTo(this.#minutes, bucketStart(at, MINUTE_MS), MINUTES_KEPT, counts);
    addTo(this.#hours, bucketStart(at, HOUR_MS), HOURS_KEPT, counts);
    // Buckets age out by the minute: checking once a minute, not on every request, is as often as any can.
    const minute = bucketStart(at, MINUTE_MS);
    if (minute !== this.#expiredInMinute) {
      this.#expiredInMinute = minute;
      this.#expire(at);
    }
    this.dirty = true;
  }

  #expire(now: number): void {
    const dropBefore = (buckets: Bucket[], windowMs: number, size: number): Bucket[] => {
      const from = bucketStart(now, size) - windowMs + size;
      return buckets.some((b) => b.start < from) ? buckets.filter((b) => b.start >= from) : buckets;
    };
    this.#minutes = dropBefore(this.#minutes, HOUR_MS, MINUTE_MS);
    this.#hours = dropBefore(this.#hours, WEEK_MS, HOUR_MS);
  }

  #use(at: number, key: string, pulls: number, bytes: number): void {
    const image = clip(key);
    const usage = this.#images.get(image) ?? { image, pulls: 0, bytes: 0, lastAt: at };
    usage.pulls += pulls;
    usage.bytes += bytes;
    usage.lastAt = at;
    this.#images.set(image, usage);
    // Trimmed in batches of a tenth, so that a stream of new names does not sort on every request.
    if (this.#images.size > this.#maxImages + Math.ceil(this.#maxImages / 10)) this.#trimImages();
  }

  /** Drops the least used: fewest pulls, then fewest bytes, then the longest unused. */
  #trimImages(): void {
    const leastUsedFirst = [...this.#images.values()].sort((a, b) => a.pulls - b.pulls || a.bytes - b.bytes || a.lastAt - b.lastAt);
    for (const usage of leastUsedFirst.slice(0, this.#images.size - this.#maxImages)) this.#images.delete(usage.image);
  }

  #addError(at: number, request: CompletedRequest): void {
    this.#errors.push({
      at,
      registry: clip(request.registry ?? ''),
      repository: clip(request.repository ?? ''),
      route: clip(request.route),
      status: request.status,
      message: errorMessage(request),
    });
    if (this.#errors.length > this.#maxErrors) this.#errors.splice(0, this.#errors.length - this.#maxErrors);
    this.dirty = true;
  }
}

/**
 * Errors an operator should see: every 5xx, and 4xx answers of the registry routes except 401,
 * which is how every registry client starts its token dance.
 */
function isError(request: CompletedRequest): boolean {
  if (request.status >= 500) return true;
  // An answer that began well and then failed (the upstream reset mid-body).
  if (request.status < 400) return request.error !== undefined;
  return request.status !== 401 && request.registry !== undefined;
}

/** The request's error, without any credential a URL in it carried. */
function errorMessage(request: CompletedRequest): string {
  const message = request.error ?? `HTTP ${request.status}`;
  return clip(message.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+|\/\S*\?\S+/gi, (url) => redactUrl(url)));
}

function bucketStart(at: number, size: number): number {
  return Math.floor(at / size) * size;
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

function bucketsOf(saved: unknown, size: number): Bucket[] {
  if (!Array.isArray(saved)) return [];
  const buckets: Bucket[] = [];
  for (const entry of saved) {
    if (!isObject(entry) || !isTime(entry.start) || entry.start % size !== 0) continue;
    if (buckets.length > 0 && entry.start <= buckets.at(-1)!.start) continue;
    buckets.push({ start: entry.start, ...totalsOf(entry) });
  }
  return buckets;
}

function errorOf(saved: unknown): RecentError[] {
  if (!isObject(saved) || !isTime(saved.at) || !isCount(saved.status)) return [];
  const text = (value: unknown): string => (typeof value === 'string' ? clip(value) : '');
  return [{ at: saved.at, status: saved.status, registry: text(saved.registry), repository: text(saved.repository), route: text(saved.route), message: text(saved.message) }];
}
