import KeyvSqlite from '@keyv/sqlite';
import Keyv from 'keyv';
import type { FastifyBaseLogger } from 'fastify';
import { parseDigest, type Digest } from '../registry/digest.js';
import type { BlobEntry, BlobKind } from './blob-types.js';

const BLOB_PREFIX = 'blob:';
const RECORD_PREFIX = 'record:';
/** Rows per page when loading: keyv's default of 10 took 17.8 s for 30k rows, 1000 took 0.41 s. */
const ITERATION_LIMIT = 1000;
const DELETE_BATCH = 1000;

type EntryRow = Omit<BlobEntry, 'digest'>;

export interface IndexContents {
  entries: BlobEntry[];
  records: Map<string, unknown>;
  /** Keys of rows that could not be understood; the caller deletes them. */
  invalid: string[];
}

/** An index write that did not reach sqlite: `set()` said false or threw. */
export class IndexWriteError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IndexWriteError';
  }
}

/**
 * The persistent half of the cache index: keyv over @keyv/sqlite, one row per blob (`blob:<digest>`) and
 * one per caller record (`record:<key>`). Nothing reads it at run time except `load()` at open; the
 * in-memory LRU is the source of truth and this store only has to survive restarts.
 *
 * Every write goes through one queue. node-sqlite3 gives no order to statements issued without waiting,
 * so without it a batched access-time write could land after the eviction that deleted the same row.
 */
export class IndexStore {
  private readonly keyv: Keyv<unknown>;
  private readonly sqlite: KeyvSqlite;
  private readonly logger: FastifyBaseLogger;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(sqlite: KeyvSqlite, logger: FastifyBaseLogger) {
    this.sqlite = sqlite;
    this.logger = logger;
    // Errors are thrown (and logged once, with their cause, where they are handled), not emitted.
    this.keyv = new Keyv<unknown>({ store: sqlite, namespace: 'layover', throwOnErrors: true, emitErrors: false });
  }

  static async open(file: string, logger: FastifyBaseLogger, busyTimeoutMs = 5_000): Promise<IndexStore> {
    const sqlite = new KeyvSqlite({ uri: `sqlite://${file}`, busyTimeout: busyTimeoutMs, iterationLimit: ITERATION_LIMIT });
    try {
      // WAL + synchronous=NORMAL: 0.4 ms per set instead of 2 ms, and still durable across a process crash.
      const mode: unknown = await sqlite.query('PRAGMA journal_mode=WAL');
      await sqlite.query('PRAGMA synchronous=NORMAL');
      if (!JSON.stringify(mode).includes('wal')) logger.warn({ file, mode }, 'cache index: WAL journal mode not available');
    } catch (error) {
      await sqlite.close().catch(() => undefined);
      throw new Error(`cannot open the cache index ${file}`, { cause: error });
    }
    return new IndexStore(sqlite, logger);
  }

  /** Every row, for the in-memory index. Runs once, at open. */
  async load(): Promise<IndexContents> {
    const iterate = this.keyv.iterator;
    if (!iterate) throw new Error('cache index: the sqlite store cannot be iterated');
    const contents: IndexContents = { entries: [], records: new Map(), invalid: [] };
    for await (const item of iterate(undefined) as AsyncIterable<[string, unknown]>) {
      const [key, value] = item;
      if (key.startsWith(RECORD_PREFIX)) {
        contents.records.set(key.slice(RECORD_PREFIX.length), value);
        continue;
      }
      const entry = key.startsWith(BLOB_PREFIX) ? toEntry(key.slice(BLOB_PREFIX.length), value) : null;
      if (entry) contents.entries.push(entry);
      else contents.invalid.push(key);
    }
    return contents;
  }

  /** Writes one blob row; throws `IndexWriteError` when sqlite did not take it. */
  putEntry(entry: BlobEntry): Promise<void> {
    return this.enqueue(async () => {
      const ok = await this.set(BLOB_PREFIX + entry.digest, toRow(entry));
      if (!ok) throw new IndexWriteError(`cache index: the row for ${entry.digest} was not written`);
    });
  }

  /** Writes many blob rows (batched access times, reconciled files); returns the digests not written. */
  putEntries(entries: readonly BlobEntry[]): Promise<Digest[]> {
    if (entries.length === 0) return Promise.resolve([]);
    return this.enqueue(async () => {
      try {
        const results = await this.keyv.setMany(entries.map((e) => ({ key: BLOB_PREFIX + e.digest, value: toRow(e) })));
        return entries.filter((_, i) => results[i] !== true).map((e) => e.digest);
      } catch (error) {
        this.logger.error({ err: error, count: entries.length }, 'cache index: batch write failed');
        return entries.map((e) => e.digest);
      }
    });
  }

  deleteEntries(digests: readonly Digest[]): Promise<void> {
    return this.deleteKeys(digests.map((d) => BLOB_PREFIX + d));
  }

  /** Deletes rows by their full key (as `load()` reported them in `invalid`). */
  deleteKeys(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    return this.enqueue(async () => {
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        // deleteMany answers false when none of the keys existed: that is not a failure, errors throw.
        await this.keyv.deleteMany(keys.slice(i, i + DELETE_BATCH));
      }
    });
  }

  putRecord(key: string, value: unknown): Promise<void> {
    return this.enqueue(async () => {
      const ok = await this.set(RECORD_PREFIX + key, value);
      if (!ok) throw new IndexWriteError(`cache index: record ${key} was not written`);
    });
  }

  deleteRecord(key: string): Promise<void> {
    return this.enqueue(async () => {
      await this.keyv.delete(RECORD_PREFIX + key);
    });
  }

  /** Resolves when every write queued so far has finished. */
  async settled(): Promise<void> {
    await this.tail;
  }

  async close(): Promise<void> {
    await this.settled();
    await this.keyv.disconnect();
  }

  private async set(key: string, value: unknown): Promise<boolean> {
    try {
      return await this.keyv.set(key, value);
    } catch (error) {
      throw new IndexWriteError(`cache index: writing ${key} failed`, { cause: error });
    }
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function toRow(entry: BlobEntry): EntryRow {
  const { size, mediaType, kind, created, lastAccess, source } = entry;
  return { size, mediaType, kind, created, lastAccess, source };
}

function toEntry(key: string, value: unknown): BlobEntry | null {
  const digest = parseDigest(key);
  if (!digest || typeof value !== 'object' || value === null) return null;
  const row = value as Partial<Record<keyof EntryRow, unknown>>;
  const kind = row.kind;
  if (
    !Number.isSafeInteger(row.size) ||
    (kind !== 'blob' && kind !== 'manifest') ||
    typeof row.created !== 'number' ||
    typeof row.lastAccess !== 'number' ||
    typeof row.source !== 'string' ||
    (row.mediaType !== null && typeof row.mediaType !== 'string')
  ) {
    return null;
  }
  return {
    digest,
    size: row.size as number,
    mediaType: row.mediaType,
    kind: kind satisfies BlobKind,
    created: row.created,
    lastAccess: row.lastAccess,
    source: row.source,
  };
}
