import type { RegistryRoute } from '../registry/registry-route.js';
import type { RequestLogFields } from '../log/request-log.js';
import { isClientTokenRequest, isRefusal } from './request-routing.js';
import { routeRequest, type RoutingTables } from './request-target.js';
import type { UpstreamTarget } from './upstream-target.js';

/** A request target the hit path may answer: a manifest or a blob of an upstream, with its log's `via`. */
export interface HitTarget {
  readonly upstream: UpstreamTarget;
  readonly route: Extract<RegistryRoute, { kind: 'manifest' | 'blob' }>;
  readonly via: RequestLogFields;
  /** Kept by HitTargets: the same object for every request of this Host and target. */
  readonly kept: boolean;
}

/** Targets kept at most; beyond, the oldest goes (a bounded memory whatever clients ask for). */
export const MAX_HIT_TARGETS = 1024;
/** Host and target longer than this together are routed each time, not kept. */
export const MAX_HIT_TARGET_KEY = 512;

/**
 * The routing of the hit path's requests, kept per Host and request target: routeRequest is a pure
 * function of those two and of tables fixed when the app starts, and its parsing (the Host, the
 * path's repository name and digest) was about a tenth of a cached manifest's CPU on the hit path
 * (bench/README.md). Only targets the hit path can answer are kept, up to MAX_HIT_TARGETS, the
 * first kept going first; what changes between requests (the cache, the access records, freshness)
 * is never kept here.
 */
export class HitTargets {
  readonly #tables: RoutingTables;
  readonly #limit: number;
  readonly #known = new Map<string, HitTarget>();

  constructor(tables: RoutingTables, limit = MAX_HIT_TARGETS) {
    this.#tables = tables;
    this.#limit = limit;
  }

  /** How many targets are kept. */
  get size(): number {
    return this.#known.size;
  }

  /** The target of a request with this Host header and target, or undefined when the hit path cannot answer it. */
  of(host: string | undefined, url: string): HitTarget | undefined {
    // Host has passed checkRequestHead (no space in it), so the key names one pair.
    const key = host === undefined ? undefined : `${host} ${url}`;
    const known = key === undefined ? undefined : this.#known.get(key);
    if (known) return known;
    const keep = key !== undefined && key.length <= MAX_HIT_TARGET_KEY;
    const target = hitTargetOf(host, url, this.#tables, keep);
    if (target && keep) {
      if (this.#known.size >= this.#limit) this.#known.delete(this.#known.keys().next().value!);
      this.#known.set(key, target);
    }
    return target;
  }
}

function hitTargetOf(host: string | undefined, url: string, tables: RoutingTables, kept: boolean): HitTarget | undefined {
  const routing = routeRequest(host, url, tables);
  if (isRefusal(routing) || isClientTokenRequest(routing)) return undefined;
  const { upstream, route } = routing;
  if (!upstream || !route || routing.token || routing.routeError) return undefined;
  if (route.kind !== 'manifest' && route.kind !== 'blob') return undefined;
  return { upstream, route, via: routing.mode === 'host' ? {} : { via: routing.mode }, kept };
}
