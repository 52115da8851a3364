import type { Digest } from '../registry/digest.js';
import type { BlobEntry } from './blob-types.js';

/**
 * The run-time index of committed blobs, in least-recently-used order. A Map keeps insertion order, so
 * re-inserting on access makes its first entries the eviction candidates: O(1) per access and per
 * evicted entry, which matters at 100,000 entries (a sorted scan per eviction would not do).
 *
 * Pins count the readers of a blob; a pinned blob is skipped by eviction rather than deleted under them.
 */
export class LruIndex {
  private readonly entries = new Map<Digest, BlobEntry>();
  private readonly pins = new Map<Digest, number>();
  private bytes = 0;
  /** At least the size of the largest entry (exact after a scan): `oversized` walks the entries only when one may exceed its limit. */
  private largest = 0;
  /** Inserts so far: an eviction pass sees when an entry came in while it ran. */
  private inserted = 0;
  private insertListener: ((entry: BlobEntry) => void) | undefined;

  get count(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  get insertions(): number {
    return this.inserted;
  }

  get(digest: Digest): BlobEntry | undefined {
    return this.entries.get(digest);
  }

  /** Fills the index at open, least recently accessed first (a stable sort: equal times keep the index's order). */
  load(entries: BlobEntry[]): void {
    entries.sort((a, b) => a.lastAccess - b.lastAccess);
    for (const entry of entries) {
      // A digest twice (an index holds one row per digest) keeps its later place and counts once.
      if (this.entries.has(entry.digest)) this.delete(entry.digest);
      this.entries.set(entry.digest, entry);
      this.bytes += entry.size;
      this.largest = Math.max(this.largest, entry.size);
    }
  }

  /** Adds (or replaces) an entry as the most recently used. */
  insert(entry: BlobEntry): void {
    this.delete(entry.digest);
    this.entries.set(entry.digest, entry);
    this.bytes += entry.size;
    this.largest = Math.max(this.largest, entry.size);
    this.inserted += 1;
    this.insertListener?.(entry);
  }

  /** One listener (the pins' cache of pinned digests), told of every insert after the load. */
  onInsert(listener: (entry: BlobEntry) => void): void {
    this.insertListener = listener;
  }

  /** Marks an access: moves the entry to the most recent end. */
  touch(digest: Digest, now: number): BlobEntry | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    this.entries.delete(digest);
    entry.lastAccess = Math.max(entry.lastAccess, now);
    this.entries.set(digest, entry);
    return entry;
  }

  delete(digest: Digest): BlobEntry | undefined {
    const entry = this.entries.get(digest);
    if (!entry) return undefined;
    this.entries.delete(digest);
    this.bytes -= entry.size;
    return entry;
  }

  pin(digest: Digest): void {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
  }

  /** Returns how many pins remain. */
  unpin(digest: Digest): number {
    const left = (this.pins.get(digest) ?? 1) - 1;
    if (left > 0) this.pins.set(digest, left);
    else this.pins.delete(digest);
    return left;
  }

  isPinned(digest: Digest): boolean {
    return this.pins.has(digest);
  }

  /**
   * Removes entries until the total is at most `limit`, and returns them: first any larger than `limit`
   * alone (see oversized), then strictly in LRU order: a pinned (being read) entry is taken too, its file is deleted when its reader closes
   * (BlobCache.evict). Stepping over it instead evicted the newest blobs while an old one was read.
   * Entries in `kept` (pinned by an operator, src/cache/cache-pins.ts) are stepped over: never victims.
   */
  takeVictims(limit: number, kept?: ReadonlySet<Digest>): BlobEntry[] {
    const victims: BlobEntry[] = [];
    if (this.bytes <= limit) return victims;
    for (const entry of this.oversized(limit, kept)) {
      this.entries.delete(entry.digest);
      this.bytes -= entry.size;
      victims.push(entry);
    }
    for (const entry of this.entries.values()) {
      if (this.bytes <= limit) break;
      if (kept?.has(entry.digest)) continue;
      // Deleting the current key while iterating a Map is safe; iteration goes on with the next one.
      this.entries.delete(entry.digest);
      this.bytes -= entry.size;
      victims.push(entry);
    }
    return victims;
  }

  /**
   * Entries larger than `limit` on their own, not in `kept`: they can never fit, so they go first. Taken
   * in LRU order instead, a blob bigger than the cap evicted every other entry before itself.
   */
  oversized(limit: number, kept?: ReadonlySet<Digest>): BlobEntry[] {
    const found: BlobEntry[] = [];
    // Every commit of a full cache asks: at 100,000 entries a walk each time is not free.
    if (this.largest <= limit) return found;
    let largest = 0;
    for (const entry of this.entries.values()) {
      largest = Math.max(largest, entry.size);
      if (entry.size > limit && !kept?.has(entry.digest)) found.push(entry);
    }
    this.largest = largest;
    return found;
  }

  oldestFirst(): BlobEntry[] {
    return [...this.entries.values()];
  }

  /** The entries least recently used first, without a copy: for walks that stop early (an eviction's next batch). */
  oldest(): IterableIterator<BlobEntry> {
    return this.entries.values();
  }

  newestFirst(): BlobEntry[] {
    return this.oldestFirst().reverse();
  }
}
