import type { Digest } from '../registry/digest.js';
import type { BlobEntry } from './blob-types.js';
import type { LeaseStore } from './lease.js';

export type { Lease, LeaseStore } from './lease.js';

/**
 * What one replica tells the others it changed, after the change is done (a committed entry only once
 * its object is readable in the store). Messages carry keys and small rows, never a record's value: a
 * Postgres NOTIFY holds at most 8000 bytes. Delivery is at most once; a receiver re-reads the index after
 * it reconnects and now and then (BlobCache), so a lost message only delays what it announced.
 */
export type IndexChange =
  | { readonly type: 'committed'; readonly entry: BlobEntry }
  | { readonly type: 'removed'; readonly digests: readonly Digest[] }
  | { readonly type: 'record-set'; readonly key: string }
  | { readonly type: 'record-deleted'; readonly key: string }
  /** Writes one replica kept through an outage of the index reached it: the others read the index again. */
  | { readonly type: 'replayed' };

export interface ChangeListener {
  /** A change another publisher (`origin`, its replica id) made; the listener ignores its own. */
  change(change: IndexChange, origin: string): void;
  /** The feed is connected again after a cut: messages may have been missed in between. */
  resubscribed(): void;
}

export interface IndexContents {
  entries: BlobEntry[];
  records: Map<string, unknown>;
  /** Keys of rows that could not be understood; the caller deletes them. */
  invalid: string[];
}

/**
 * Where the cache's index rows (one per blob) and caller records live: SQLite in the data directory, or
 * a Redis or Postgres that several replicas share (implementations in ./indexes/, chosen by
 * `openCacheIndex`). The in-memory LRU is built from `load()` at open and is a cache of the index:
 * on shared backends, other replicas' changes arrive through `feed` and `load()` is repeated now and then.
 *
 * Writes run in call order. A write that fails rejects (or, for `putEntries`, reports its digests) and
 * is also kept and replayed by the index when the backend answers again, unless a later write to the
 * same key replaced it; so an outage of the backend loses no write the process still remembers.
 */
export interface CacheIndex extends LeaseStore {
  /** Every row; an error (the backend unreachable mid-way) rejects rather than returning part of it. */
  load(): Promise<IndexContents>;
  /** Writes one blob row; rejects with `IndexWriteError` when the backend did not take it. */
  putEntry(entry: BlobEntry): Promise<void>;
  /** Writes many blob rows (batched access times, reconciled files); resolves with the digests not written. */
  putEntries(entries: readonly BlobEntry[]): Promise<Digest[]>;
  deleteEntries(digests: readonly Digest[]): Promise<void>;
  /** Deletes rows by their full key (as `load()` reported them in `invalid`). */
  deleteKeys(keys: readonly string[]): Promise<void>;
  putRecord(key: string, value: unknown): Promise<void>;
  /**
   * Writes `value` only where the backend holds `expected` (deep-equal) when the write's turn comes, a
   * replay after an outage included: resolves false, writing nothing, when it holds anything else.
   * Rejects with `IndexWriteError` when the backend did not take it (kept, and checked again when
   * replayed). On a shared backend the check and the write are one step (a compare-and-set): another
   * replica's write between them is seen, not overwritten.
   */
  putRecordOver(key: string, expected: unknown, value: unknown): Promise<boolean>;
  /** Writes many records in batches (a copy of an index, a bench's cache); rejects with `IndexWriteError` naming how many were not written. */
  putRecords(records: ReadonlyArray<readonly [string, unknown]>): Promise<void>;
  deleteRecord(key: string): Promise<void>;
  /**
   * The record as the backend holds it now (undefined when absent); for a change another replica announced.
   * Rejects when the backend cannot be reached.
   */
  readRecord(key: string): Promise<unknown>;
  /** The blob's row as the backend holds it now (undefined when absent or unreadable); rejects when the backend cannot be reached. */
  readEntry(digest: Digest): Promise<BlobEntry | undefined>;
  /**
   * The change feed of a shared backend (Redis pub/sub, Postgres LISTEN/NOTIFY); absent for SQLite,
   * which one process owns. `publish` never rejects: a message that cannot be sent is lost (at most once).
   */
  readonly feed?: ChangeFeed;
  /** Calls `listener` each time writes kept through an outage have reached the backend (absent: none are kept). */
  onReplayed?(listener: () => void): void;
  /** Resolves when every write queued so far has finished (replays of failed writes aside). */
  settled(): Promise<void>;
  /** Settles, tries the failed writes once more, and disconnects. */
  close(): Promise<void>;
}

export interface ChangeFeed {
  publish(change: IndexChange, origin: string): Promise<void>;
  /** Starts listening (a connection of its own); resolves once subscribed. One listener per feed. */
  subscribe(listener: ChangeListener): Promise<void>;
}

/** An index write that did not reach the backend: it refused it or could not be reached. */
export class IndexWriteError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IndexWriteError';
  }
}

/**
 * The index backend could not be reached or used at open (refused connection, bad credentials, no such
 * database). The message names the backend and its host, never the URL's password: print it as it is.
 */
export class CacheIndexUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CacheIndexUnavailableError';
  }
}
