import type { FastifyBaseLogger } from 'fastify';
import { IndexWriteError, type CacheIndex } from './cache-index.js';
import type { ReplicaSync } from './replica-sync.js';

/** What of a BlobCache the records use; the cache owns all of it. */
export interface RecordsHost {
  readonly logger: FastifyBaseLogger;
  readonly index: CacheIndex;
  /** Shared indexes only: other replicas' changes in, this one's out. */
  readonly sync: ReplicaSync | undefined;
  /** Throws once the cache is closed. */
  assertOpen(): void;
}

/** Told of every change to a record: its value before, and after (undefined once deleted). */
export type RecordListener = (key: string, before: unknown, after: unknown) => void;

/** The records' map, telling a listener of each change, whoever makes it (this replica, or the replica sync). */
class ObservedRecords extends Map<string, unknown> {
  listener: RecordListener | undefined;

  override set(key: string, value: unknown): this {
    const before = super.get(key);
    super.set(key, value);
    this.listener?.(key, before, value);
    return this;
  }

  override delete(key: string): boolean {
    const before = super.get(key);
    const deleted = super.delete(key);
    if (deleted) this.listener?.(key, before, undefined);
    return deleted;
  }

  override clear(): void {
    const keys = [...super.keys()];
    for (const key of keys) this.delete(key);
  }
}

/**
 * The records callers keep in the cache (tags, access, pins): answered from memory, written through to
 * the index and announced to the other replicas. The map is also the replica sync's to change.
 */
export class CacheRecords {
  readonly values: Map<string, unknown>;
  private readonly host: RecordsHost;

  constructor(values: Map<string, unknown>, host: RecordsHost) {
    this.values = new ObservedRecords(values);
    this.host = host;
  }

  /** One listener (the pins' cache of pinned digests), told of every change from now on. */
  onChange(listener: RecordListener): void {
    (this.values as ObservedRecords).listener = listener;
  }

  get<T>(key: string): T | undefined {
    return this.values.get(key) as T | undefined;
  }

  /** Keeps a JSON copy, so what is served before a restart is exactly what is served after it. */
  async set<T>(key: string, value: T): Promise<void> {
    this.host.assertOpen();
    const copy: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
    this.host.sync?.changing('record', key);
    this.values.set(key, copy);
    if (!(await this.keptIfUnwritten(this.host.index.putRecord(key, copy), key))) return;
    this.host.sync?.announce({ type: 'record-set', key });
  }

  /** The keys of the records that start with `prefix`. */
  keys(prefix: string): string[] {
    return [...this.values.keys()].filter((key) => key.startsWith(prefix));
  }

  async delete(key: string): Promise<void> {
    this.host.assertOpen();
    this.host.sync?.changing('record', key);
    this.values.delete(key);
    if (!(await this.keptIfUnwritten(this.host.index.deleteRecord(key), key))) return;
    this.host.sync?.announce({ type: 'record-deleted', key });
  }

  /**
   * True once a record write reached the index. One it did not take is kept there and replayed (then
   * announced as a whole): this replica goes on with the value in memory, and its caller (a pull) with it.
   */
  private async keptIfUnwritten(write: Promise<void>, key: string): Promise<boolean> {
    try {
      await write;
      return true;
    } catch (error) {
      if (!(error instanceof IndexWriteError)) throw error;
      this.host.logger.debug({ err: error, key }, 'cache: a record write waits for the index');
      return false;
    }
  }
}
