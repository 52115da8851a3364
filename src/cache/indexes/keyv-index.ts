import { isDeepStrictEqual } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import type Keyv from 'keyv';
import type { Digest } from '../../registry/digest.js';
import type { BlobEntry } from '../blob-types.js';
import { CacheIndexUnavailableError, IndexWriteError, type CacheIndex, type ChangeFeed, type IndexContents } from '../cache-index.js';
import type { Lease, LeaseOptions, LeaseStore } from '../lease.js';
import { BLOB_PREFIX, collectRows, decodeValue, RECORD_PREFIX, toEntry, toRow, UNREADABLE, type RowPage } from './index-rows.js';
import type { RowSwap, SwapRow } from './row-swap.js';
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
  /**
   * Shared backends only: merging writes are compare-and-set, so another replica's write between a
   * merge's read and its write is merged again, never overwritten. SQLite needs none: one process owns
   * the file, and this index's queue orders every write to it.
   */
  swap?: RowSwap;
  close(): Promise<void>;
}

export interface KeyvIndexOptions {
  /** First delay before failed writes are replayed; it doubles up to MAX_RETRY_MS while they keep failing. Default 1 s. */
  retryMs?: number;
}

/** What a `merge` answers to leave the row the backend holds as it is (the write is then done, not failed). */
const KEEP_STORED = Symbol('keep the stored row');

/** `merge` combines the row the backend holds (undefined when absent) with the one being written, or answers KEEP_STORED. */
type SetWrite = { readonly key: string; readonly deleted: false; readonly value: unknown; readonly merge?: (current: unknown, next: unknown) => unknown };
type Write = SetWrite | { readonly key: string; readonly deleted: true };

interface FailedWrite {
  key: string;
  error: unknown;
}

/** One caller's writes waiting in a group, with its place in the order. */
interface WriteCall {
  readonly writes: readonly Write[];
  readonly sequence: number;
  readonly resolve: (failed: FailedWrite[]) => void;
  readonly reject: (error: unknown) => void;
}

const MAX_RETRY_MS = 30_000;
/** Rows per backend call (one MULTI in Redis, one upsert in Postgres): a MULTI holds a shared Redis for its whole length. */
const WRITE_BATCH = 1_000;
/** Failed writes kept for replay; beyond this the oldest are dropped (reconciliation at the next start repairs them). */
const MAX_FAILED = 100_000;
/** Reads and merges of a row that other replicas keep changing before it is written; then the write fails (and is replayed). */
const SWAP_ROUNDS = 5;
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
  /** The writes waiting for their turn in the queue, applied together (see write). */
  private group: WriteCall[] | undefined;
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
   * never moves back another replica's newer access (on a shared backend a compare-and-set: a write
   * landing between the read and the write is merged again).
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

  async putRecordOver(key: string, expected: unknown, value: unknown): Promise<boolean> {
    let written = false;
    // Decided when the write is applied, so a replay after an outage looks at the row as it is then.
    const merge = (current: unknown): unknown => ((written = isDeepStrictEqual(current, expected)) ? value : KEEP_STORED);
    const failed = await this.write([{ key: RECORD_PREFIX + key, deleted: false, value, merge }]);
    if (failed.length > 0) throw new IndexWriteError(`cache index: record ${key} was not written`, { cause: failed[0]!.error });
    return written;
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

  /**
   * Applies writes in order, in batches; resolves with those that failed (and keeps them for a replay).
   * Writes called while the queue is busy join one group, applied as one batch when their turn comes
   * (a group commit): one call per write held the queue for a backend round trip and an event-loop turn
   * each, so under load the writes of every pull piled up behind each other, each holding its request.
   */
  private write(writes: readonly Write[]): Promise<FailedWrite[]> {
    if (writes.length === 0) return Promise.resolve([]);
    const sequence = ++this.sequence;
    return new Promise((resolve, reject) => {
      if (this.group === undefined) {
        const group: WriteCall[] = [];
        this.group = group;
        this.enqueue(() => {
          // From here on new writes start the next group, queued behind this one.
          if (this.group === group) this.group = undefined;
          return this.applyGroup(group);
        }).catch((error: unknown) => {
          for (const call of group) call.reject(error);
        });
      }
      this.group.push({ writes, sequence, resolve, reject });
    });
  }

  /** The writes of a group, the last of each key only, in batches; each call learns which of its keys failed. */
  private async applyGroup(group: readonly WriteCall[]): Promise<void> {
    const writes = lastOfEachKey(group);
    const failures = new Map<string, unknown>();
    for (let i = 0; i < writes.length; i += this.writeBatch) {
      const batch = writes.slice(i, i + this.writeBatch);
      const { errors } = await this.apply(batch.map(({ write }) => write));
      batch.forEach(({ write, sequence }, j) => {
        const error = errors[j];
        if (error === undefined) {
          if ((this.failed.get(write.key)?.sequence ?? Infinity) <= sequence) this.failed.delete(write.key);
          return;
        }
        failures.set(write.key, plainError(error));
        this.keep(write, sequence);
      });
    }
    if (failures.size > 0) {
      const [first] = failures.values();
      this.throttled.error({ err: first, backend: this.backend.name, count: failures.size, pending: this.failed.size }, WRITE_FAILED);
      this.scheduleReplay();
    }
    for (const call of group) {
      const failed: FailedWrite[] = [];
      for (const { key } of call.writes) if (failures.has(key)) failed.push({ key, error: failures.get(key) });
      call.resolve(failed);
    }
  }

  /**
   * One batch: an error (or undefined for success) per write, and which writes left the stored row as
   * it was (KEEP_STORED: done, nothing written). Sets and deletes run as one call each.
   */
  private async apply(batch: readonly Write[]): Promise<{ errors: unknown[]; unchanged: Set<number> }> {
    const unchanged = new Set<number>();
    if (this.backend.connected?.() === false) return { errors: batch.map(() => new Error(`${this.backend.name} is not connected`)), unchanged };
    const errors: unknown[] = new Array<unknown>(batch.length).fill(undefined);
    const sets = batch.flatMap((write, i) => (write.deleted ? [] : [{ i, key: write.key, value: write.value, merge: write.merge }]));
    const deletes = batch.flatMap((write, i) => (write.deleted ? [{ i, key: write.key }] : []));
    const swap = this.backend.swap;
    const swapping = swap ? sets.filter((set) => set.merge) : [];
    if (swap && swapping.length > 0) await this.swapMerged(swap, swapping, errors, unchanged);
    const setting = swap ? sets.filter((set) => !set.merge) : sets;
    if (setting.length > 0) {
      try {
        const merging = setting.filter((set) => set.merge);
        if (merging.length > 0) {
          const current = await this.call(() => this.backend.keyv.getMany(merging.map(({ key }) => key)));
          merging.forEach((set, j) => (set.value = set.merge!(current[j], set.value)));
        }
        for (const set of setting) if (set.value === KEEP_STORED) unchanged.add(set.i);
        const writing = setting.filter((set) => set.value !== KEEP_STORED);
        const results: unknown = writing.length === 0 ? [] : await this.call(() => this.backend.keyv.setMany(writing.map(({ key, value }) => ({ key, value }))));
        // Stores with a batch call answer nothing and throw on failure; the others answer a boolean per row.
        if (Array.isArray(results)) {
          writing.forEach(({ i }, j) => {
            if (results[j] !== true) errors[i] = new Error('the backend did not take the row');
          });
        }
      } catch (error) {
        for (const { i } of setting) errors[i] = error;
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
    return { errors, unchanged };
  }

  /**
   * Merging sets on a shared backend: each merged with the row as read and written only where the row
   * is still that one; a row another replica wrote in between is read and merged again. Only the rows
   * not settled (written, or left as they were) when a call fails are failed.
   */
  private async swapMerged(swap: RowSwap, merging: ReadonlyArray<{ i: number; key: string; value: unknown; merge?: SetWrite['merge'] }>, errors: unknown[], unchanged: Set<number>): Promise<void> {
    let pending = merging;
    try {
      for (let round = 0; round < SWAP_ROUNDS && pending.length > 0; round += 1) {
        const stored = await this.call(() => swap.read(pending.map(({ key }) => key)));
        const rows: SwapRow[] = [];
        const writing: Array<(typeof pending)[number]> = [];
        for (const [j, set] of pending.entries()) {
          const row = stored[j] ?? null;
          const current = row === null ? undefined : decodeValue(row.text);
          // A row nobody can read is replaced, as a plain write would.
          const value = set.merge!(current === UNREADABLE ? undefined : current, set.value);
          if (value === KEEP_STORED) {
            unchanged.add(set.i);
            continue;
          }
          rows.push({ key: set.key, version: row?.version ?? null, text: await this.serialize(value) });
          writing.push(set);
        }
        pending = writing;
        if (rows.length === 0) return;
        const written = await this.call(() => swap.write(rows));
        pending = writing.filter((_, j) => written[j] !== true);
      }
    } catch (error) {
      for (const { i } of pending) if (!unchanged.has(i)) errors[i] = error;
      return;
    }
    for (const { i } of pending) errors[i] = new Error(`the row changed under each of ${SWAP_ROUNDS} merges`);
  }

  /** A value as keyv stores it (its serializer's text), for a compare-and-set. */
  private async serialize(value: unknown): Promise<string> {
    const text = await this.backend.keyv.serializeData({ value, expires: undefined });
    if (typeof text !== 'string') throw new Error(`${this.backend.name}: keyv has no serializer to write a row's text with`);
    return text;
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
        const { errors, unchanged } = await this.apply(batch.map((k) => k.write));
        batch.forEach((k, j) => {
          if (errors[j] !== undefined || this.failed.get(k.write.key) !== k) return;
          this.failed.delete(k.write.key);
          // One that wrote nothing (a write-back the row had moved past) tells the replicas nothing new.
          if (!unchanged.has(j)) replayed += 1;
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

/**
 * The writes of a group in call order, each key once: where the key ends up (a batch applies its sets
 * before its deletes, and a backend may refuse a key twice in one statement). A plain set or a delete
 * replaces what came before it; a merging set is applied after it (afterEarlier).
 */
function lastOfEachKey(group: readonly WriteCall[]): Array<{ write: Write; sequence: number }> {
  const last = new Map<string, { write: Write; sequence: number }>();
  for (const { writes, sequence } of group) {
    for (const write of writes) {
      const earlier = last.get(write.key)?.write;
      // Re-inserted so that Map order is the order of the last writes.
      last.delete(write.key);
      last.set(write.key, { write: earlier && !write.deleted && write.merge ? afterEarlier(earlier, write, write.merge) : write, sequence });
    }
  }
  return [...last.values()];
}

/**
 * A merging set (`later`, with its `merge`) applied after `earlier` of the same key, as one
 * write: merged with what `earlier` leaves (its value, no row after a delete, or what its own merge
 * makes of the stored row). Where `later` keeps the row it finds (KEEP_STORED), `earlier` stands.
 */
function afterEarlier(earlier: Write, later: SetWrite, merge: NonNullable<SetWrite['merge']>): Write {
  if (earlier.deleted || !earlier.merge) {
    const value = merge(earlier.deleted ? undefined : earlier.value, later.value);
    return value === KEEP_STORED ? earlier : { key: later.key, deleted: false, value };
  }
  const first = earlier.merge;
  const combined = (current: unknown): unknown => {
    const before = first(current, earlier.value);
    const after = merge(before === KEEP_STORED ? current : before, later.value);
    return after === KEEP_STORED ? before : after;
  };
  return { key: later.key, deleted: false, value: later.value, merge: combined };
}
