import { isDeepStrictEqual } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import { IndexWriteError, type CacheIndex } from './cache-index.js';
import type { ReplicaSync, SyncedRecords } from './replica-sync.js';

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

/**
 * Another replica's value of a record and this replica's, as one: what both replicas added. It must
 * give back `remote` itself (deep-equal) once `remote` holds all of `local`, or replicas would write
 * it back and forth.
 */
export type RecordMerge = (local: unknown, remote: unknown) => unknown;

/**
 * The records callers keep in the cache (tags, access, pins): answered from memory, written through to
 * the index and announced to the other replicas. The loaded map is kept as it is: a copy into a map
 * that tells of its changes cost 40-50 ms of a start at 100,000 blobs (a Map insert per record).
 */
export class CacheRecords {
  readonly #values: Map<string, unknown>;
  #listener: RecordListener | undefined;
  readonly #merges: Array<{ prefix: string; merge: RecordMerge }> = [];
  private readonly host: RecordsHost;
  /** What the replica sync changes, told to the listener like this replica's own changes. */
  readonly synced: SyncedRecords;

  constructor(values: Map<string, unknown>, host: RecordsHost) {
    this.#values = values;
    this.host = host;
    this.synced = {
      arrived: (key, value) => this.#arrived(key, value),
      delete: (key) => this.#remove(key),
      keys: () => this.#values.keys(),
    };
  }

  /**
   * Records under `prefix` are merged when another replica's value arrives: replicas write a record
   * whole, so two changes at once (a member added here, a holder there) would otherwise keep only the
   * last one written. What this replica had and the arrival lacks is written back.
   */
  mergeUnder(prefix: string, merge: RecordMerge): void {
    this.#merges.push({ prefix, merge });
  }

  /** One listener (the pins' cache of pinned digests), told of every change from now on. */
  onChange(listener: RecordListener): void {
    this.#listener = listener;
  }

  get<T>(key: string): T | undefined {
    return this.#values.get(key) as T | undefined;
  }

  /** Keeps a JSON copy, so what is served before a restart is exactly what is served after it. */
  async set<T>(key: string, value: T): Promise<void> {
    this.host.assertOpen();
    const copy: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
    this.host.sync?.changing('record', key);
    this.#put(key, copy);
    if (!(await this.keptIfUnwritten(this.host.index.putRecord(key, copy), key))) return;
    this.host.sync?.announce({ type: 'record-set', key });
  }

  /** The keys of the records that start with `prefix`. */
  keys(prefix: string): string[] {
    return [...this.#values.keys()].filter((key) => key.startsWith(prefix));
  }

  async delete(key: string): Promise<void> {
    this.host.assertOpen();
    this.host.sync?.changing('record', key);
    this.#remove(key);
    if (!(await this.keptIfUnwritten(this.host.index.deleteRecord(key), key))) return;
    this.host.sync?.announce({ type: 'record-deleted', key });
  }

  #arrived(key: string, remote: unknown): void {
    const local = this.#values.get(key);
    const merge = local === undefined ? undefined : this.#merges.find((m) => key.startsWith(m.prefix))?.merge;
    const merged = merge ? merge(local, remote) : remote;
    this.#put(key, merged);
    if (merged === remote || isDeepStrictEqual(merged, remote)) return;
    void this.#writeBack(key, remote, merged);
  }

  /**
   * A merged record to the index and the other replicas, only where the index still holds the value
   * it was merged with when the write lands, a replay after an outage included: a record deleted
   * meanwhile (a purge, an eviction's forgetting) is not brought back, and a newer value is merged on
   * its own when it arrives. A change made here meanwhile is written after it, so it wins.
   */
  async #writeBack(key: string, remote: unknown, merged: unknown): Promise<void> {
    try {
      // No sync.changing: values read meanwhile are merged when they arrive, never lost to this one.
      if (await this.host.index.putRecordOver(key, remote, merged)) this.host.sync?.announce({ type: 'record-set', key });
    } catch (error) {
      // Kept by the index and checked again when replayed (then announced as a whole).
      if (error instanceof IndexWriteError) this.host.logger.debug({ err: error, key }, 'cache: a merged record waits for the index');
      else this.host.logger.warn({ err: error, key }, 'cache: a merged record could not be written back');
    }
  }

  #put(key: string, value: unknown): void {
    const before = this.#values.get(key);
    this.#values.set(key, value);
    this.#listener?.(key, before, value);
  }

  #remove(key: string): void {
    if (!this.#values.has(key)) return;
    const before = this.#values.get(key);
    this.#values.delete(key);
    this.#listener?.(key, before, undefined);
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
