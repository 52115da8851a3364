import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics/metrics.js';
import type { Digest } from '../registry/digest.js';
import type { BlobStore } from './blob-store.js';
import type { BlobEntry } from './blob-types.js';
import type { Lease, LeaseStore } from './lease.js';
import { leaseStillHeld } from './lease-holding.js';
import type { LruIndex } from './lru-index.js';

/** The one lease every replica of a shared index takes before it evicts (`layover cache prune` too). */
export const EVICTION_LEASE = 'evict';
/**
 * Long enough for a few batches between renewals, short enough that a replica killed mid-run holds up
 * the fleet's eviction for half a minute at most.
 */
const LEASE_TTL_MS = 30_000;
/** A batch is not begun with less than this share of the ttl left: its deletions must end while the lease is still ours. */
const BATCH_NEEDS_SHARE = 1 / 3;
/** Deletions (and existence checks) at once; also how many run between two looks at the lease. */
const BATCH = 32;
/**
 * How often a replica of a shared index looks at the fleet's total: a commit that found the lease taken
 * does not evict, and the holder may have finished before that commit reached it.
 */
const FLEET_CHECK_MS = 30_000;
/** `prune` waits this long at most for a holder to finish (or for its lease to run out), in ttls. */
const PRUNE_WAIT_TTLS = 2.5;
const PRUNE_POLL_MS = 250;

/** What of a BlobCache eviction reads and changes; the cache owns all of it. */
export interface EvictionHost {
  readonly logger: FastifyBaseLogger;
  readonly lru: LruIndex;
  readonly store: BlobStore;
  /**
   * Deletes the rows and objects of entries already taken out of the LRU and tells the other replicas;
   * an object read here goes when its last reader closes. Never rejects.
   */
  remove(victims: BlobEntry[]): Promise<void>;
  /** A fill of this digest runs here: it commits its own row and object. */
  isFilling(digest: Digest): boolean;
  /** Pinned digests (src/cache/cache-pins.ts): never victims. A set at once when nothing is pinned; absent: none. */
  kept?(): ReadonlySet<Digest> | Promise<ReadonlySet<Digest>>;
}

export interface EvictionOptions {
  maxSize: number;
  /** Present on a shared index: eviction then runs only under its lease, one replica at a time. */
  leases?: LeaseStore;
  /** The fleet check's period (FLEET_CHECK_MS); tests shorten it. */
  fleetCheckMs?: number;
  /** The eviction lease's ttl (LEASE_TTL_MS); tests shorten it. */
  leaseTtlMs?: number;
  /** Counts evictions (layover_evictions_total, layover_evicted_bytes_total). */
  metrics?: Metrics;
}

export interface EvictionResult {
  removed: number;
  freedBytes: number;
}

const NOTHING: EvictionResult = { removed: 0, freedBytes: 0 };
const NONE_KEPT: ReadonlySet<Digest> = new Set();

/**
 * Keeps the cache under its cap, least recently used first. With an index of its own (SQLite) a replica
 * evicts right after each commit, as it always did. On a shared index every replica's LRU mirrors the
 * whole fleet, so each would evict the same excess at once and the fleet would lose N times too much:
 * there eviction runs only under the fleet's lease, taken without waiting after a commit and on a
 * periodic check, renewed between batches, and given up the moment a renewal fails.
 */
export class BlobEviction {
  private readonly host: EvictionHost;
  private readonly maxSize: number;
  private readonly leases: LeaseStore | undefined;
  private readonly leaseTtlMs: number;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly metrics: Metrics | undefined;
  /** Evicted since start (this replica's runs), for BlobCache.stats(). */
  readonly totals = { evictions: 0, evictedBytes: 0 };
  /** The fleet run of this replica, if one is under way; a request meanwhile asks for one more. */
  private running: Promise<EvictionResult> | undefined;
  private again = false;
  private stopped = false;

  constructor(host: EvictionHost, options: EvictionOptions) {
    this.host = host;
    this.maxSize = options.maxSize;
    this.leases = options.leases;
    this.leaseTtlMs = options.leaseTtlMs ?? LEASE_TTL_MS;
    this.metrics = options.metrics;
    if (this.leases) {
      this.timer = setInterval(() => {
        if (this.host.lru.totalBytes > this.maxSize) this.request();
      }, options.fleetCheckMs ?? FLEET_CHECK_MS);
      // The check alone must not keep a process alive that has nothing else to do.
      this.timer.unref();
    }
  }

  /** After a commit: back under the cap; on a shared index only if the lease is free (the check catches up). */
  request(): void {
    void this.evict(this.maxSize);
  }

  /** Evicts down to `limit` now; on a shared index only if the lease is free. Never rejects. */
  evict(limit: number): Promise<EvictionResult> {
    if (!this.leases) return this.evictDirectly(limit);
    if (this.stopped) return Promise.resolve(NOTHING);
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run: Promise<EvictionResult> = this.runFleet(limit, false)
      .catch((error: unknown) => {
        // The index unreachable: the next commit or check tries again.
        this.host.logger.warn({ err: error }, 'cache eviction failed');
        return NOTHING;
      })
      .finally(() => {
        if (this.running !== run) return;
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.request();
        }
      });
    this.running = run;
    return run;
  }

  /**
   * Evicts down to `limit`; on a shared index waits for the lease (another replica's run ends, or its
   * lease runs out) and rejects when it does not come.
   */
  async prune(limit: number): Promise<EvictionResult> {
    if (!this.leases) return this.evictDirectly(limit);
    await this.running;
    return this.runFleet(limit, true);
  }

  /** No new run starts; one under way ends after its batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private evictDirectly(limit: number): Promise<EvictionResult> {
    if (this.host.lru.totalBytes <= limit) return Promise.resolve(NOTHING);
    // Without pins the victims are taken in this turn, as before pins existed: a commit's caller sees the cache under its cap.
    const kept = this.keptOrAll();
    return kept instanceof Promise ? kept.then((pinned) => this.evictExcept(limit, pinned)) : this.evictExcept(limit, kept);
  }

  /** The pinned digests; when they cannot be worked out, every digest (evicting nothing beats evicting a pin). */
  private keptOrAll(): ReadonlySet<Digest> | Promise<ReadonlySet<Digest>> {
    const all = (error: unknown): ReadonlySet<Digest> => {
      this.host.logger.warn({ err: error }, 'cache eviction skipped: the pinned digests could not be worked out');
      return new Set(this.host.lru.oldestFirst().map((entry) => entry.digest));
    };
    try {
      const kept = this.host.kept?.() ?? NONE_KEPT;
      return kept instanceof Promise ? kept.catch(all) : kept;
    } catch (error) {
      return all(error);
    }
  }

  private async evictExcept(limit: number, kept: ReadonlySet<Digest>): Promise<EvictionResult> {
    const victims = this.host.lru.takeVictims(limit, kept);
    if (victims.length === 0) return NOTHING;
    // Removed in digest order, which is the order of their paths (blobs/<algorithm>/<fan>/<hex>) and of
    // the index's keys: neighbouring directory entries and rows, not ones at random.
    victims.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    const freedBytes = victims.reduce((sum, entry) => sum + entry.size, 0);
    this.counted(victims);
    await this.host.remove(victims);
    this.logged(victims.length, freedBytes, limit);
    return { removed: victims.length, freedBytes };
  }

  private async runFleet(limit: number, wait: boolean): Promise<EvictionResult> {
    const { lru, logger } = this.host;
    if (lru.totalBytes <= limit) return NOTHING;
    const leases = this.leases as LeaseStore;
    const lease = wait ? await this.waitForLease(leases) : await leases.acquireLease(EVICTION_LEASE, this.leaseTtlMs);
    if (!lease) {
      logger.debug({ totalBytes: lru.totalBytes, maxSize: limit }, 'cache eviction: another replica holds the eviction lease');
      return NOTHING;
    }
    let removed = 0;
    let freedBytes = 0;
    try {
      const kept = await this.keptOrAll();
      // Found again only when an entry came in meanwhile: each batch walking every entry made a large pass quadratic.
      const oversized = { entries: lru.oversized(limit, kept), next: 0, insertions: lru.insertions };
      while (lru.totalBytes > limit && !this.stopped) {
        if (lru.insertions !== oversized.insertions) Object.assign(oversized, { entries: lru.oversized(limit, kept), next: 0, insertions: lru.insertions });
        if (!(await leaseStillHeld(lease, this.leaseTtlMs * BATCH_NEEDS_SHARE))) {
          logger.warn({ lease: lease.token, totalBytes: lru.totalBytes, maxSize: limit }, 'cache eviction stopped: the eviction lease was lost');
          break;
        }
        const batch = this.nextBatch(limit, kept, oversized);
        // Everything left is pinned: the cache stays over its cap rather than lose a pin.
        if (batch.length === 0) break;
        const victims = await this.confirmedVictims(batch);
        if (victims.length === 0) continue;
        this.counted(victims);
        await this.host.remove(victims);
        removed += victims.length;
        freedBytes += victims.reduce((sum, entry) => sum + entry.size, 0);
      }
    } finally {
      await lease.release().catch((error: unknown) => logger.warn({ err: error }, 'cache: the eviction lease was not released; it runs out'));
    }
    if (removed > 0) this.logged(removed, freedBytes, limit, lease.token);
    return { removed, freedBytes };
  }

  /**
   * Up to BATCH entries taken out of the LRU, as many as bring it down to `limit`: those of `oversized`
   * still in it first (larger than the limit alone; `next` moves past those taken), then the least recently used.
   */
  private nextBatch(limit: number, kept: ReadonlySet<Digest>, oversized: { readonly entries: readonly BlobEntry[]; next: number }): BlobEntry[] {
    const { lru } = this.host;
    const batch: BlobEntry[] = [];
    while (oversized.next < oversized.entries.length && lru.totalBytes > limit && batch.length < BATCH) {
      const entry = oversized.entries[oversized.next++]!;
      if (lru.get(entry.digest) !== entry) continue;
      lru.delete(entry.digest);
      batch.push(entry);
    }
    const taken = batch.length;
    let total = lru.totalBytes;
    // Not oldestFirst(): a copy of 100,000 entries for each batch of 32 made a pass quadratic.
    for (const entry of lru.oldest()) {
      if (total <= limit || batch.length === BATCH) break;
      if (kept.has(entry.digest)) continue;
      total -= entry.size;
      batch.push(entry);
    }
    for (const entry of batch.slice(taken)) lru.delete(entry.digest);
    return batch;
  }

  /**
   * The victims whose object is still in the store. One that is gone was evicted by the previous holder
   * of the lease, whose announcement has not reached this replica yet: it is only forgotten here, never
   * removed (and announced) a second time; its row, if any, may be a fill's about to commit.
   */
  private async confirmedVictims(batch: BlobEntry[]): Promise<BlobEntry[]> {
    const stored = await Promise.all(
      // A store that cannot answer: evict anyway; a failed deletion leaves an object the next reconcile adopts.
      batch.map((entry) => this.host.store.stat(entry.digest).then((blob) => blob !== null).catch(() => true)),
    );
    // While the store answered, a client may have asked for one: adopted again from its row (a hit now),
    // or fetched again by a fill that writes a row and object of its own. Neither is a victim any more.
    const { lru, isFilling } = this.host;
    return batch.filter((entry, i) => stored[i] && !lru.get(entry.digest) && !isFilling(entry.digest));
  }

  private async waitForLease(leases: LeaseStore): Promise<Lease> {
    const deadline = Date.now() + PRUNE_WAIT_TTLS * this.leaseTtlMs;
    for (let attempt = 0; ; attempt += 1) {
      const lease = await leases.acquireLease(EVICTION_LEASE, this.leaseTtlMs);
      if (lease) return lease;
      // Said once, at warn: `layover cache prune` shows only warnings, and its user should know why it waits.
      if (attempt === 0) this.host.logger.warn('cache prune: another replica is evicting; waiting for the eviction lease');
      if (Date.now() > deadline) throw new Error('another replica has held the eviction lease for too long; try again later');
      await new Promise((resolve) => setTimeout(resolve, PRUNE_POLL_MS));
    }
  }

  /** Counted as soon as they are out of the LRU: stats() agrees with the cache's size at every moment. */
  private counted(victims: readonly BlobEntry[]): void {
    const bytes = victims.reduce((sum, entry) => sum + entry.size, 0);
    this.totals.evictions += victims.length;
    this.totals.evictedBytes += bytes;
    this.metrics?.evictions.inc(victims.length);
    this.metrics?.evictedBytes.inc(bytes);
  }

  private logged(removed: number, bytes: number, limit: number, lease?: number): void {
    this.host.logger.info({ removed, bytes, totalBytes: this.host.lru.totalBytes, maxSize: limit, reason: 'lru', ...(lease === undefined ? {} : { lease }) }, 'cache evicted');
  }
}
