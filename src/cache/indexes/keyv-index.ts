import type { FastifyBaseLogger } from 'fastify';
import type Keyv from 'keyv';
import type { Digest } from '../../registry/digest.js';
import type { BlobEntry } from '../blob-types.js';
import { CacheIndexUnavailableError, IndexWriteError, type CacheIndex, type ChangeFeed, type IndexContents } from '../cache-index.js';
import type { Lease, LeaseOptions, LeaseStore } from '../lease.js';
import { BLOB_PREFIX, collectRows, RECORD_PREFIX, toEntry, toRow, type RowPage } from './index-rows.js';
import { plainError, ThrottledLog } from './throttled-log.js';

/** What differs between SQLite, Redis and Postgres; the rest of an index is the same keyv code. */
export interface IndexBackend extends LeaseStore {
  /** E.g. `redis 10.0.0.5:6379`: for log lines and errors, never with credentials. */
  readonly name: string;
  /** Throws on every failure (`throwOnErrors`), emits nothing. */
  readonly keyv: Keyv<unknown>;
  /** Rows per backend call (WRITE_BATCH by default); SQLite, which no other process shares, takes more at once. */
  readonly writeBatch?: number;
  /** Every row of the namespace in pages, keys without the namespace, values as stored; throws when a page fails. */
  rows(): AsyncIterable<RowPage>;
  /** False while the backend is known to be unreachable: writes then fail at once instead of waiting for a reconnect. */
  connected?(): boolean;
  /**
   * Shared backends: runs one call within the backend's bound (BoundedCalls), so that a backend that
   * accepts and never answers fails the call like an unreachable one. SQLite has no server to wait for.
   */
  bound?<T>(call: () => Promise<T>): Promise<T>;
  /** Shared backends only: how replicas hear of each other's changes. */
  feed?: ChangeFeed;
  close(): Promise<void>;
}

export interface KeyvIndexOptions {
  /** First delay before failed writes are replayed; it doubles up to MAX_RETRY_MS while they keep failing. Default 1 s. */
  retryMs?: number;
}

/** `merge` combines the row the backend holds (undefined when absent) with the one being written. */
type Write =
  | { readonly key: string; readonly deleted: false; readonly value: unknown; readonly merge?: (current: unknown, next: unknown) => unknown }
  | { readonly key: string; readonly deleted: true };

const MAX_RETRY_MS = 30_000;
/** Rows per backend call (one MULTI in Redis, one upsert in Postgres): a MULTI holds a shared Redis for its whole length. */
const WRITE_BATCH = 1_000;
/** Failed writes kept for replay; beyond this the oldest are dropped (reconciliation at the next start repairs them). */
const MAX_FAILED = 100_000;
const WRITE_FAILED = 'cache index: write failed; kept to replay when the backend answers again';

/**
 * A CacheIndex over keyv. Every write goes through one queue, so writes land in call order (node-sqlite3
 * gives no order to statements issued without waiting, and a batched access-time write must not land
 * after the eviction that deleted the same row) and at most one batch is in flight per index.
 *
 * A failed write is reported to the caller and also kept, by key, with its place in the order; a later
 * write of the same key replaces it. Kept writes are replayed with a growing delay until the backend
 * takes them, so an index backend that restarts does not need Layover to restart.
 */
export class KeyvCacheIndex implements CacheIndex {
  private readonly backend: IndexBackend;
  private readonly logger: FastifyBaseLogger;
  private readonly throttled: ThrottledLog;
  private readonly retryMs: number;
  private readonly writeBatch: number;
  private tail: Promise<unknown> = Promise.resolve();
  private sequence = 0;
  private readonly failed = new Map<string, { write: Write; sequence: number }>();
  private retryDelay: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private replayedListener: (() => void) | undefined;

  constructor(backend: IndexBackend, logger: FastifyBaseLogger, options: KeyvIndexOptions = {}) {
    this.backend = backend;
    this.logger = logger;
    this.throttled = new ThrottledLog(logger);
    this.retryMs = options.retryMs ?? 1_000;
    this.retryDelay = this.retryMs;
    this.writeBatch = backend.writeBatch ?? WRITE_BATCH;
  }

  async load(): Promise<IndexContents> {
    try {
      return await collectRows(this.boundedPages());
    } catch (error) {
      throw new CacheIndexUnavailableError(`cannot load the cache index from ${this.backend.name}: ${(error as Error).message}`, { cause: plainError(error) });
    }
  }

  async putEntry(entry: BlobEntry): Promise<void> {
    const failed = await this.write([{ key: BLOB_PREFIX + entry.digest, deleted: false, value: toRow(entry) }]);
    if (failed.length > 0) throw new IndexWriteError(`cache index: the row for ${entry.digest} was not written`, { cause: failed[0]!.error });
  }

  /**
   * Batched access times: the row keeps the later of its stored `lastAccess` and this one, so a replica
   * never moves back another replica's newer access (read and write are two calls: a write landing in
   * between loses at most that one access time, never a row).
   */
  async putEntries(entries: readonly BlobEntry[]): Promise<Digest[]> {
    const failed = await this.write(entries.map((e) => ({ key: BLOB_PREFIX + e.digest, deleted: false, value: toRow(e), merge: laterAccess })));
    const keys = new Set(failed.map((f) => f.key));
    return entries.filter((e) => keys.has(BLOB_PREFIX + e.digest)).map((e) => e.digest);
  }

  deleteEntries(digests: readonly Digest[]): Promise<void> {
    return this.deleteKeys(digests.map((d) => BLOB_PREFIX + d));
  }

  async deleteKeys(keys: readonly string[]): Promise<void> {
    const failed = await this.write(keys.map((key) => ({ key, deleted: true })));
    if (failed.length > 0) throw new IndexWriteError(`cache index: ${failed.length} rows were not deleted`, { cause: failed[0]!.error });
  }

  async putRecord(key: string, value: unknown): Promise<void> {
    const failed = await this.write([{ key: RECORD_PREFIX + key, deleted: false, value }]);
    if (failed.length > 0) throw new IndexWriteError(`cache index: record ${key} was not written`, { cause: failed[0]!.error });
  }

  async putRecords(records: ReadonlyArray<readonly [string, unknown]>): Promise<void> {
    const failed = await this.write(records.map(([key, value]) => ({ key: RECORD_PREFIX + key, deleted: false, value })));
    if (failed.length > 0) throw new IndexWriteError(`cache index: ${failed.length} records were not written`, { cause: failed[0]!.error });
  }

  async deleteRecord(key: string): Promise<void> {
    const failed = await this.write([{ key: RECORD_PREFIX + key, deleted: true }]);
    if (failed.length > 0) throw new IndexWriteError(`cache index: record ${key} was not deleted`, { cause: failed[0]!.error });
  }

  async readRecord(key: string): Promise<unknown> {
    return this.call(() => this.backend.keyv.get(RECORD_PREFIX + key));
  }

  async readEntry(digest: Digest): Promise<BlobEntry | undefined> {
    const row: unknown = await this.call(() => this.backend.keyv.get(BLOB_PREFIX + digest));
    return row === undefined ? undefined : (toEntry(digest, row) ?? undefined);
  }

  get feed(): ChangeFeed | undefined {
    return this.backend.feed;
  }

  onReplayed(listener: () => void): void {
    this.replayedListener = listener;
  }

  acquireLease(name: string, ttlMs: number, options?: LeaseOptions): Promise<Lease | null> {
    return this.backend.acquireLease(name, ttlMs, options);
  }

  leaseNote(name: string): Promise<string | null> {
    return this.backend.leaseNote(name);
  }

  async settled(): Promise<void> {
    await this.tail;
  }

  /** How many failed writes wait for a replay (for tests and status). */
  get pendingWrites(): number {
    return this.failed.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.settled();
    if (this.failed.size > 0) await this.replay();
    if (this.failed.size > 0) this.logger.error({ backend: this.backend.name, count: this.failed.size }, 'cache index: writes lost at close (the next start reconciles them)');
    await this.backend.close();
  }

  /** Applies writes in order, in batches; resolves with those that failed (and keeps them for a replay). */
  private write(writes: readonly Write[]): Promise<Array<{ key: string; error: unknown }>> {
    if (writes.length === 0) return Promise.resolve([]);
    const sequence = ++this.sequence;
    return this.enqueue(async () => {
      const failed: Array<{ key: string; error: unknown }> = [];
      for (let i = 0; i < writes.length; i += this.writeBatch) {
        const batch = writes.slice(i, i + this.writeBatch);
        const errors = await this.apply(batch);
        batch.forEach((write, j) => {
          const error = errors[j];
          if (error === undefined) {
            if ((this.failed.get(write.key)?.sequence ?? Infinity) <= sequence) this.failed.delete(write.key);
            return;
          }
          failed.push({ key: write.key, error: plainError(error) });
          this.keep(write, sequence);
        });
      }
      if (failed.length > 0) {
        this.throttled.error({ err: failed[0]!.error, backend: this.backend.name, count: failed.length, pending: this.failed.size }, WRITE_FAILED);
        this.scheduleReplay();
      }
      return failed;
    });
  }

  /** One batch: an error (or undefined for success) per write. Sets and deletes run as one call each. */
  private async apply(batch: readonly Write[]): Promise<unknown[]> {
    if (this.backend.connected?.() === false) return batch.map(() => new Error(`${this.backend.name} is not connected`));
    const errors: unknown[] = new Array<unknown>(batch.length).fill(undefined);
    const sets = batch.flatMap((write, i) => (write.deleted ? [] : [{ i, key: write.key, value: write.value, merge: write.merge }]));
    const deletes = batch.flatMap((write, i) => (write.deleted ? [{ i, key: write.key }] : []));
    if (sets.length > 0) {
      try {
        const merging = sets.filter((set) => set.merge);
        if (merging.length > 0) {
          const current = await this.call(() => this.backend.keyv.getMany(merging.map(({ key }) => key)));
          merging.forEach((set, j) => (set.value = set.merge!(current[j], set.value)));
        }
        const results: unknown = await this.call(() => this.backend.keyv.setMany(sets.map(({ key, value }) => ({ key, value }))));
        // Stores with a batch call answer nothing and throw on failure; the others answer a boolean per row.
        if (Array.isArray(results)) {
          sets.forEach(({ i }, j) => {
            if (results[j] !== true) errors[i] = new Error('the backend did not take the row');
          });
        }
      } catch (error) {
        for (const { i } of sets) errors[i] = error;
      }
    }
    if (deletes.length > 0) {
      try {
        // deleteMany answers false when none of the keys existed: not a failure; errors throw.
        await this.call(() => this.backend.keyv.deleteMany(deletes.map(({ key }) => key)));
      } catch (error) {
        for (const { i } of deletes) errors[i] = error;
      }
    }
    return errors;
  }

  private keep(write: Write, sequence: number): void {
    // Re-inserted so that Map order stays oldest first, which is what is dropped when too many wait.
    this.failed.delete(write.key);
    this.failed.set(write.key, { write, sequence });
    if (this.failed.size <= MAX_FAILED) return;
    const [oldest] = this.failed.keys();
    if (oldest !== undefined) this.failed.delete(oldest);
    this.throttled.error({ backend: this.backend.name, kept: MAX_FAILED }, 'cache index: too many failed writes kept; dropping the oldest');
  }

  private scheduleReplay(): void {
    if (this.retryTimer !== undefined || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.replay();
    }, this.retryDelay);
    // A replay alone must not keep a process alive that has nothing else to do.
    this.retryTimer.unref();
    this.retryDelay = Math.min(this.retryDelay * 2, MAX_RETRY_MS);
  }

  /** Replays the kept writes, each with its original place in the order; never rejects. */
  private replay(): Promise<void> {
    return this.enqueue(async () => {
      const kept = [...this.failed.values()];
      if (kept.length === 0) return;
      let replayed = 0;
      for (let i = 0; i < kept.length; i += this.writeBatch) {
        const batch = kept.slice(i, i + this.writeBatch);
        const errors = await this.apply(batch.map((k) => k.write));
        batch.forEach((k, j) => {
          if (errors[j] !== undefined || this.failed.get(k.write.key) !== k) return;
          this.failed.delete(k.write.key);
          replayed += 1;
        });
      }
      if (replayed > 0) this.replayedListener?.();
      if (this.failed.size === 0) {
        this.retryDelay = this.retryMs;
        this.throttled.reset(WRITE_FAILED);
        this.logger.info({ backend: this.backend.name, replayed }, 'cache index: the backend answers again; failed writes replayed');
      } else {
        this.throttled.error({ backend: this.backend.name, pending: this.failed.size }, WRITE_FAILED);
        this.scheduleReplay();
      }
    }).catch((error: unknown) => {
      this.logger.error({ err: plainError(error), backend: this.backend.name }, 'cache index: replay failed');
    });
  }

  private call<T>(call: () => Promise<T>): Promise<T> {
    return this.backend.bound ? this.backend.bound(call) : call();
  }

  /** The backend's rows, each page within the backend's bound. */
  private async *boundedPages(): AsyncIterable<RowPage> {
    const pages = this.backend.rows()[Symbol.asyncIterator]();
    for (;;) {
      const next = await this.call(() => pages.next());
      if (next.done) return;
      yield next.value;
    }
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** The row being written, with the later `lastAccess` of it and the stored row. */
function laterAccess(this: void, current: unknown, next: unknown): unknown {
  const stored = typeof current === 'object' && current !== null ? (current as { lastAccess?: unknown }).lastAccess : undefined;
  const row = next as { lastAccess: number };
  return typeof stored === 'number' && stored > row.lastAccess ? { ...row, lastAccess: stored } : row;
}
