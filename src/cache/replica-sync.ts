import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobStore } from './blob-store.js';
import type { BlobEntry } from './blob-types.js';
import type { CacheIndex, ChangeFeed, IndexChange } from './cache-index.js';
import type { LruIndex } from './lru-index.js';

/**
 * Messages are delivered at most once (a replica cut off from the feed misses what was sent meanwhile),
 * so each replica also re-reads the whole index now and then. A few minutes keeps the load of a large
 * index (one SCAN or one paged SELECT) small for the backend, while a missed change is late, never wrong.
 */
const RESYNC_INTERVAL_MS = 5 * 60_000;
/** A failed re-read (the index connection not back yet after a cut) is tried again soon, not at the next interval. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
/** Changes kept while the cache opens (its reconcile can take a while); past this, attach re-reads instead. */
const MAX_EARLY_CHANGES = 10_000;
/** Store look-ups at once when a re-read finds blobs this replica does not know. */
const STAT_CONCURRENCY = 8;

/** The records as the sync changes them (other replicas' changes): each change is told to the records' listener. */
export interface SyncedRecords {
  /** Another replica set `key` to `value` (read back from the index): kept, or merged with this replica's (CacheRecords.mergeUnder). */
  arrived(key: string, value: unknown): void;
  delete(key: string): void;
  keys(): IterableIterator<string>;
}

/** What of a BlobCache the sync changes; the cache owns all of it. */
export interface SyncHost {
  readonly logger: FastifyBaseLogger;
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly lru: LruIndex;
  readonly records: SyncedRecords;
  /** Makes another replica's committed blob a hit here. */
  insert(entry: BlobEntry): void;
  /** A fill of this digest runs here: it commits (or drops) its own entry, nothing else touches it. */
  isFilling(digest: Digest): boolean;
  /** This replica's row for the digest waits to be written: the index does not show it yet. */
  isUnwritten(digest: Digest): boolean;
}

const blobKey = (digest: Digest): string => `blob:${digest}`;
const recordKey = (key: string): string => `record:${key}`;

/**
 * Keeps a BlobCache's memory (LRU and records) a cache of a shared index: announces this replica's
 * changes, applies the other replicas' ones, and re-reads the index after a cut of the feed and every
 * RESYNC_INTERVAL_MS. A remote removal only forgets the entry: the replica that removed it deleted the
 * object, and a read under way here keeps its stream.
 */
export class ReplicaSync {
  /** Tags this replica's messages, so that it ignores them when they come back. */
  readonly id = randomUUID();
  private readonly feed: ChangeFeed;
  private host: SyncHost | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** What arrived before the cache was built from its first load (see `listen`). */
  private early: Array<{ change: IndexChange; origin: string }> | undefined = [];
  private missedEarly = false;
  /** Keys changed while a re-read runs: what the load returns for them may be older. */
  private changedDuringResync: Set<string> | undefined;
  /** The latest change of each record whose value is being read: an older read that returns later is dropped. */
  private readonly recordReads = new Map<string, object>();
  private resyncing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = RETRY_FIRST_MS;
  private stopped = false;

  private constructor(feed: ChangeFeed) {
    this.feed = feed;
  }

  /**
   * Subscribes before the cache's first load, and keeps what arrives until `attach`: a change made
   * between that load and the subscription would otherwise be missed until the next re-read.
   */
  static async listen(feed: ChangeFeed): Promise<ReplicaSync> {
    const sync = new ReplicaSync(feed);
    await feed.subscribe({
      change: (change, origin) => {
        if (!sync.early) return sync.apply(change, origin);
        if (sync.early.length < MAX_EARLY_CHANGES) sync.early.push({ change, origin });
        else sync.missedEarly = true;
      },
      resubscribed: () => {
        if (sync.early) sync.missedEarly = true;
        else void sync.resync();
      },
    });
    return sync;
  }

  /** The cache is built from its first load: from now on changes apply to it. */
  attach(host: SyncHost): void {
    this.host = host;
    const early = this.early ?? [];
    this.early = undefined;
    for (const { change, origin } of early) this.apply(change, origin);
    this.timer = setInterval(() => void this.resync(), RESYNC_INTERVAL_MS);
    // The timer alone must not keep a process alive that has nothing else to do.
    this.timer.unref();
    if (this.missedEarly) void this.resync();
  }

  /** Called before a local change of a blob row or record, so that a re-read under way leaves it alone. */
  changing(type: 'blob' | 'record', key: string): void {
    this.changedDuringResync?.add(type === 'blob' ? blobKey(key as Digest) : recordKey(key));
    if (type === 'record') this.recordReads.delete(key);
  }

  /** Tells the other replicas, after the change is done (never rejects). */
  announce(change: IndexChange): void {
    if (!this.stopped) void this.feed.publish(change, this.id);
  }

  stop(): void {
    this.stopped = true;
    this.early = undefined;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
  }

  /** Re-reads the index and makes the memory agree with it; never rejects, never blocks a request. */
  resync(): Promise<void> {
    const host = this.host;
    // Before `attach` the first load is still to come: it reads everything anyway.
    if (this.stopped || !host) return Promise.resolve();
    this.resyncing ??= this.reread(host)
      .then(() => {
        this.retryDelay = RETRY_FIRST_MS;
      })
      .catch((error: unknown) => {
        host.logger.warn({ err: error, retryMs: this.retryDelay }, 'cache: re-reading the shared index failed; trying again');
        this.scheduleRetry();
      })
      .finally(() => {
        this.resyncing = undefined;
        this.changedDuringResync = undefined;
      });
    return this.resyncing;
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.resync();
    }, this.retryDelay);
    this.retryTimer.unref();
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
  }

  private apply(change: IndexChange, origin: string): void {
    const host = this.host;
    if (origin === this.id || this.stopped || !host) return;
    const { lru, records } = host;
    switch (change.type) {
      case 'committed': {
        const { entry } = change;
        this.changedDuringResync?.add(blobKey(entry.digest));
        if (!lru.get(entry.digest) && !host.isFilling(entry.digest)) host.insert({ ...entry });
        return;
      }
      case 'removed':
        for (const digest of change.digests) {
          this.changedDuringResync?.add(blobKey(digest));
          if (!host.isFilling(digest)) lru.delete(digest);
        }
        return;
      case 'replayed':
        // What it wrote meanwhile was announced to nobody (the feed was down too): read it all.
        void this.resync();
        return;
      case 'record-deleted':
        this.changing('record', change.key);
        records.delete(change.key);
        return;
      case 'record-set': {
        this.changing('record', change.key);
        const read = {};
        this.recordReads.set(change.key, read);
        host.index
          .readRecord(change.key)
          .then((value) => {
            if (this.recordReads.get(change.key) !== read) return;
            this.recordReads.delete(change.key);
            if (value === undefined) records.delete(change.key);
            else records.arrived(change.key, value);
          })
          .catch((error: unknown) => {
            if (this.recordReads.get(change.key) === read) this.recordReads.delete(change.key);
            host.logger.warn({ err: error }, 'cache: a record another replica set could not be read; the next re-read brings it');
          });
        return;
      }
    }
  }

  private async reread(host: SyncHost): Promise<void> {
    const changed = new Set<string>();
    this.changedDuringResync = changed;
    const { index, lru, records, store } = host;
    // This replica's own queued writes land first, so the load does not undo them.
    await index.settled();
    const loaded = await index.load();
    if (this.stopped) return;

    // Merged as a message's value is: what this replica changed while its feed was down is kept too.
    for (const [key, value] of loaded.records) if (!changed.has(recordKey(key))) records.arrived(key, value);
    for (const key of [...records.keys()]) if (!loaded.records.has(key) && !changed.has(recordKey(key))) records.delete(key);

    const untouched = (digest: Digest): boolean => !changed.has(blobKey(digest)) && !host.isFilling(digest);
    const rows = new Map(loaded.entries.map((entry) => [entry.digest, entry]));
    let dropped = 0;
    for (const entry of lru.oldestFirst()) {
      const row = rows.get(entry.digest);
      if (row) entry.lastAccess = Math.max(entry.lastAccess, row.lastAccess);
      else if (untouched(entry.digest) && !host.isUnwritten(entry.digest)) {
        lru.delete(entry.digest);
        dropped += 1;
      }
    }
    // A row is written before its object is complete: only a row whose object exists becomes a hit.
    const unknown = loaded.entries.filter((entry) => !lru.get(entry.digest) && untouched(entry.digest)).sort((a, b) => a.lastAccess - b.lastAccess);
    const found: BlobEntry[] = [];
    for (let i = 0; i < unknown.length && !this.stopped; i += STAT_CONCURRENCY) {
      const batch = unknown.slice(i, i + STAT_CONCURRENCY);
      const stored = await Promise.all(batch.map((entry) => store.stat(entry.digest).catch(() => null)));
      batch.forEach((entry, j) => {
        if (stored[j] && !lru.get(entry.digest) && untouched(entry.digest)) found.push(entry);
      });
    }
    for (const entry of found) host.insert(entry);
    if (dropped > 0 || found.length > 0) host.logger.info({ added: found.length, dropped, entries: lru.count }, 'cache: re-read the shared index');
  }
}
