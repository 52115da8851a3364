import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HostnameSet } from '../registry/hostname.js';
import { RegistryLabels } from './registry-labels.js';
import { RequestTally } from './request-tally.js';
import type { UpstreamFailureCause } from './upstream-failure-cause.js';

/** Where the body bytes of an answer came from: the cache (bytes the upstream did not send again), the upstream, or another replica. */
export type ServedSource = 'cache' | 'upstream' | 'peer';

/** What the gauges of the cache read at each scrape (BlobCache.stats()). */
export interface CacheGaugeSource {
  stats(): { entries: number; bytes: number; maxSize: number; activeFills: number; waiters?: number };
}

/** What the request log knows of a request when it completes: what /metrics and the status page count. */
export interface CompletedRequest {
  /** https, http, proxy, admin or `registry port N`. */
  readonly listener: string;
  /** blob, manifest, tags, referrers, token, redirect, peer, service, admin, metrics, status, other. */
  readonly route: string;
  /** The upstream registry asked about, as its `registry` label value (see registryLabel); undefined for Layover's own routes. */
  readonly registry: string | undefined;
  readonly repository: string | undefined;
  /** hit, miss, stale, pass, denied; undefined where no cache decision was made. */
  readonly cache: string | undefined;
  readonly status: number;
  /** Body bytes sent to the client (0 for HEAD, 304 and error answers). */
  readonly bytes: number;
  /** Where those bytes came from; undefined where no cache decision was made. */
  readonly source?: ServedSource;
  /** The error message of a request that failed (5xx), for the status page's recent errors. */
  readonly error: string | undefined;
}

/** Told of completed requests: `times` of them alike (RequestTally). */
export type RequestObserver = (request: CompletedRequest, times: number) => void;

/**
 * How often the event loop's delay is sampled for `nodejs_eventloop_lag_*`. prom-client's 10 ms is a
 * timer that wakes an idle Layover 100 times a second; ten times still catches every stall worth a
 * graph, and each sample is timed to the nanosecond.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * Every Prometheus series Layover exports, in one registry per app (so tests and replicas count
 * apart). Names follow Prometheus conventions: `layover_` prefix, `_total` counters, base units
 * (bytes, seconds). Labels stay bounded: registries are the configured ones, never repositories.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #observers: RequestObserver[] = [];
  readonly #registryLabels = new RegistryLabels();
  readonly #tally = new RequestTally((request, times) => this.recordRequest(request, times));
  #cache: CacheGaugeSource | null = null;

  readonly requests = new Counter({ name: 'layover_requests_total', help: 'Requests answered, by route, registry, cache result and status class', labelNames: ['route', 'registry', 'cache', 'status'] as const, registers: [this.registry] });
  readonly bytesServed = new Counter({ name: 'layover_served_bytes_total', help: 'Body bytes sent to clients, by registry and where they came from (cache: bytes the upstream did not have to send)', labelNames: ['registry', 'source'] as const, registers: [this.registry] });
  readonly fillsInFlight: Gauge = new Gauge({ name: 'layover_fills_in_flight', help: 'Blob downloads into the cache in progress', registers: [this.registry], collect: (): void => this.#readCache((stats) => this.fillsInFlight.set(stats.activeFills)) });
  readonly fillWaiters: Gauge = new Gauge({ name: 'layover_fill_waiters', help: 'Clients following a download in progress', registers: [this.registry], collect: (): void => this.#readCache((stats) => stats.waiters !== undefined && this.fillWaiters.set(stats.waiters)) });
  readonly upstreamDuration = new Histogram({ name: 'layover_upstream_request_duration_seconds', help: 'Time to an upstream answer\'s headers, by registry', labelNames: ['registry'] as const, buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly upstreamErrors = new Counter({ name: 'layover_upstream_errors_total', help: 'Upstream requests that failed, by registry and cause (connect, dns, tls, timeout, status_5xx, status_429, reset, digest)', labelNames: ['registry', 'cause'] as const, registers: [this.registry] });
  readonly upstreamTokens = new Counter({ name: 'layover_upstream_tokens_fetched_total', help: 'Bearer tokens fetched from upstream token services, by registry', labelNames: ['registry'] as const, registers: [this.registry] });
  readonly evictions = new Counter({ name: 'layover_evictions_total', help: 'Blobs evicted to stay under CACHE_MAX_SIZE', registers: [this.registry] });
  readonly evictedBytes = new Counter({ name: 'layover_evicted_bytes_total', help: 'Bytes evicted to stay under CACHE_MAX_SIZE', registers: [this.registry] });
  readonly cacheBytes: Gauge = new Gauge({ name: 'layover_cache_bytes', help: 'Bytes of verified blobs in the cache', registers: [this.registry], collect: (): void => this.#readCache((stats) => this.cacheBytes.set(stats.bytes)) });
  readonly cacheEntries: Gauge = new Gauge({ name: 'layover_cache_entries', help: 'Verified blobs in the cache', registers: [this.registry], collect: (): void => this.#readCache((stats) => this.cacheEntries.set(stats.entries)) });
  readonly cacheMaxBytes: Gauge = new Gauge({ name: 'layover_cache_max_bytes', help: 'CACHE_MAX_SIZE', registers: [this.registry], collect: (): void => this.#readCache((stats) => this.cacheMaxBytes.set(stats.maxSize)) });
  readonly dnsQueries = new Counter({ name: 'layover_dns_queries_total', help: 'DNS queries, by result (answered, forwarded, refused, failed, limited)', labelNames: ['result'] as const, registers: [this.registry] });
  readonly tlsHandshakes = new Counter({ name: 'layover_tls_handshakes_total', help: 'TLS handshakes, by result (ok, failed)', labelNames: ['result'] as const, registers: [this.registry] });
  readonly certificatesMinted = new Counter({ name: 'layover_tls_certificates_minted_total', help: 'Leaf certificates minted by Layover\'s CA', registers: [this.registry] });
  readonly openConnections = new Gauge({ name: 'layover_open_connections', help: 'Open client connections, by listener', labelNames: ['listener'] as const, registers: [this.registry] });
  readonly dockerHubLimit = new Gauge({ name: 'layover_docker_hub_ratelimit_limit', help: 'Docker Hub\'s RateLimit-Limit, by account and source address', labelNames: ['account', 'source'] as const, registers: [this.registry] });
  readonly dockerHubRemaining = new Gauge({ name: 'layover_docker_hub_ratelimit_remaining', help: 'Docker Hub\'s RateLimit-Remaining, by account and source address', labelNames: ['account', 'source'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /**
   * Counts a completed request (`times` alike) and tells the observers (the status page's history).
   * `registry` should already be a label value (registryLabel): the request log passes it so.
   */
  recordRequest(request: CompletedRequest, times = 1): void {
    const registry = this.registryLabel(request.registry);
    this.requests.inc({ route: request.route, registry, cache: request.cache ?? '', status: `${Math.floor(request.status / 100)}xx` }, times);
    const source = request.source ?? sourceOf(request.cache);
    if (request.bytes > 0 && source !== undefined) this.bytesServed.inc({ registry, source }, request.bytes * times);
    for (const observe of this.#observers) observe(request, times);
  }

  /**
   * recordRequest, batched (RequestTally): for a request object made once and completed again and
   * again (the hit path's). Counted before /metrics is read (exposition) or the status page reads
   * its history (flushTally), else within a second.
   */
  tallyRequest(request: CompletedRequest): void {
    this.#tally.add(request);
  }

  /** Counts the tallied requests now. */
  flushTally(): void {
    this.#tally.flush();
  }

  /** The bounded value of a `registry` label for a registry name (see RegistryLabels); '' for none. */
  registryLabel(name: string | undefined): string {
    return this.#registryLabels.label(name);
  }

  /** Registries a wildcard of REGISTRIES matches are counted under the wildcard, not one series each. */
  useRegistries(intercepted: HostnameSet): void {
    this.#registryLabels.useRegistries(intercepted);
  }

  /** The cache whose size, cap, fills and waiters the gauges report, read at each scrape. */
  watchCache(cache: CacheGaugeSource): void {
    this.#cache = cache;
  }

  /** An upstream answered (its headers arrived after `seconds`); a 5xx or a 429 is an error of its own. */
  upstreamAnswered(registry: string, seconds: number, status: number): void {
    const label = this.registryLabel(registry);
    this.upstreamDuration.observe({ registry: label }, seconds);
    if (status >= 500) this.upstreamErrors.inc({ registry: label, cause: 'status_5xx' });
    else if (status === 429) this.upstreamErrors.inc({ registry: label, cause: 'status_429' });
  }

  /** An upstream request that ended without a usable answer: none at all, or bytes that did not match their digest. */
  upstreamFailed(registry: string, cause: UpstreamFailureCause): void {
    this.upstreamErrors.inc({ registry: this.registryLabel(registry), cause });
  }

  #readCache(apply: (stats: ReturnType<CacheGaugeSource['stats']>) => unknown): void {
    if (this.#cache) apply(this.#cache.stats());
  }

  onRequest(observer: RequestObserver): void {
    this.#observers.push(observer);
  }

  /** The Prometheus text exposition. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    this.flushTally();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Where a request's bytes came from when its recorder did not say: by its cache result, none without one. */
function sourceOf(cache: string | undefined): ServedSource | undefined {
  if (cache === 'hit' || cache === 'stale') return 'cache';
  return cache === 'miss' || cache === 'pass' ? 'upstream' : undefined;
}
