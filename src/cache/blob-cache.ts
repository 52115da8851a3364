import { mkdir, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, hasherFor, type Digest } from '../registry/digest.js';
import { AccessRecorder } from './access-recorder.js';
import { BlobFill, type FillHost } from './blob-fill.js';
import { BlobEviction, type EvictionHost } from './blob-eviction.js';
import { BlobRemovals } from './blob-removals.js';
import { verifyBlobs } from './blob-verify.js';
import { BlobStoreUnavailableError, type BlobStore, type BlobUpload } from './blob-store.js';
import { createBlobStore } from './blob-stores/create-blob-store.js';
import type { BlobCacheOptions, BlobEntry, BlobMeta, ByteRange, Fill } from './blob-types.js';
import { CacheLayout } from './cache-layout.js';
import { DirectoryLock } from './directory-lock.js';
import { isCode, writeDurably } from './durable-files.js';
import { FillError } from './fill-error.js';
import { IndexWriteError, type CacheIndex, type IndexChange, type LeaseStore } from './cache-index.js';
import { openCacheIndex } from './indexes/open-cache-index.js';
import { LruIndex } from './lru-index.js';
import { reconcile } from './reconcile.js';
import { ReplicaSync, type SyncHost } from './replica-sync.js';
import { readLimited } from '../upstream/read-limited.js';
import { CachePins } from './cache-pins.js';
import { purgeScope, type PurgeResult } from './cache-purge.js';
import type { CacheScope } from './cache-scope.js';
import { FillWaiters } from './fill-waiters.js';
import { ImageCatalog } from './image-catalog.js';

export type { BlobCacheOptions, BlobEntry, BlobKind, BlobMeta, ByteRange, Fill } from './blob-types.js';
export { FillError, type FillFailure } from './fill-error.js';
export { DirectoryLockedError } from './directory-lock.js';
export { BlobStoreUnavailableError } from './blob-store.js';

const DEFAULT_ACCESS_FLUSH_MS = 5_000;
const DEFAULT_RELAY_WINDOW_BYTES = 16 * 1024 * 1024;
/** No manifest comes near this (the manifest route refuses bigger ones); a bigger "manifest" is not read for the catalog. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** What `open` takes beyond BlobCacheOptions: knobs for tests, not settings. */
export interface BlobCacheOpenOptions extends BlobCacheOptions {
  /** On a shared index: how often the fleet's total is checked against the cap (default 30 s). */
  fleetEvictionCheckMs?: number;
}

/**
 * The content-addressed blob cache: verified blobs stored once per digest in a BlobStore (files under
 * `dir`, or an S3 bucket; fills are spooled under `dir` either way), an in-memory LRU
 * that answers stat/read without I/O on the index, single-flight fills that every concurrent reader
 * follows, and a keyv/sqlite index that only has to survive restarts.
 */
export class BlobCache {
  private readonly layout: CacheLayout;
  private readonly logger: FastifyBaseLogger;
  private readonly maxSize: number;
  private readonly lock: DirectoryLock;
  private readonly index: CacheIndex;
  private readonly store: BlobStore;
  private readonly records: Map<string, unknown>;
  private readonly lru = new LruIndex();
  private readonly access: AccessRecorder;
  private readonly fills = new Map<Digest, BlobFill>();
  private readonly host: FillHost;
  private readonly removals: BlobRemovals;
  private readonly eviction: BlobEviction;
  private readonly waiters = new FillWaiters();
  /** Images as the cache knows them: tags, manifests and what they reference (the admin API, purges, pins). */
  readonly catalog: ImageCatalog;
  /** Scopes never evicted (records: durable and shared). */
  readonly pins: CachePins;
  /** Shared indexes only: other replicas' changes in, this one's out. */
  private sync: ReplicaSync | undefined;
  private closed = false;

  private constructor(options: BlobCacheOpenOptions, layout: CacheLayout, lock: DirectoryLock, store: BlobStore, index: CacheIndex, records: Map<string, unknown>) {
    this.layout = layout;
    this.store = store;
    this.logger = options.logger;
    this.maxSize = options.maxSize;
    this.lock = lock;
    this.index = index;
    this.records = records;
    this.removals = new BlobRemovals(store, this.logger);
    this.catalog = new ImageCatalog({
      stat: (digest) => this.lru.get(digest),
      list: () => this.lru.oldestFirst(),
      recordKeys: (prefix) => this.recordKeys(prefix),
      getRecord: (key) => this.getRecord(key),
      readManifest: (digest) => this.readManifest(digest),
    });
    this.pins = new CachePins(this, this.catalog, this.logger);
    this.eviction = new BlobEviction(this.evictionHost(), {
      maxSize: this.maxSize,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(index.feed ? { leases: index } : {}),
      ...(options.fleetEvictionCheckMs === undefined ? {} : { fleetCheckMs: options.fleetEvictionCheckMs }),
    });
    this.access = new AccessRecorder(options.accessFlushMs ?? DEFAULT_ACCESS_FLUSH_MS, (d) => this.lru.get(d), index, this.logger);
    this.host = {
      logger: this.logger,
      stallTimeoutMs: options.stallTimeoutMs,
      relayWindowBytes: options.relayWindowBytes ?? DEFAULT_RELAY_WINDOW_BYTES,
      beginUpload: (digest, tmpPath, meta) => store.beginUpload(digest, tmpPath, meta),
      commit: (fill, upload, size) => this.commitFill(fill, upload, size),
      abandon: (fill) => {
        if (this.fills.get(fill.digest) === fill) this.fills.delete(fill.digest);
      },
      readCommitted: (digest, range) => this.read(digest, range)?.stream,
    };
  }

  /**
   * Takes the directory lock, checks that the blob store can be used (BlobStoreUnavailableError otherwise),
   * reconciles store and index after a crash, and rebuilds the LRU order.
   */
  static async open(options: BlobCacheOpenOptions): Promise<BlobCache> {
    if (!Number.isSafeInteger(options.maxSize) || options.maxSize < 0) throw new RangeError(`maxSize: expected bytes, got ${options.maxSize}`);
    if (!(options.stallTimeoutMs > 0)) throw new RangeError(`stallTimeoutMs: expected a positive duration, got ${options.stallTimeoutMs}`);
    const relayWindow = options.relayWindowBytes;
    if (relayWindow !== undefined && !(Number.isSafeInteger(relayWindow) && relayWindow > 0)) throw new RangeError(`relayWindowBytes: expected bytes, got ${relayWindow}`);
    const layout = new CacheLayout(options.dir);
    await mkdir(layout.tmpDir, { recursive: true });
    await mkdir(layout.blobsDir, { recursive: true });
    const lock = await DirectoryLock.acquire(layout.lockFile);
    let index: CacheIndex | undefined;
    let store: BlobStore | undefined;
    try {
      store = await createBlobStore(options.blobStore ?? { kind: 'file' }, layout);
      await store.check();
      index = await openCacheIndex(options.cacheIndex ?? { kind: 'sqlite' }, { sqliteFile: layout.indexFile, logger: options.logger });
      // Shared indexes: subscribed before the load, so that no change falls between the two.
      const sync = index.feed ? await ReplicaSync.listen(index.feed) : undefined;
      const loaded = await index.load();
      const entries = await reconcile(layout, store, loaded, index, options.logger);
      const cache = new BlobCache(options, layout, lock, store, index, loaded.records);
      cache.lru.load(entries);
      cache.sync = sync;
      sync?.attach(cache.syncHost());
      if (sync) index.onReplayed?.(() => sync.announce({ type: 'replayed' }));
      // The cap may have been lowered since the last run.
      await cache.eviction.evict(cache.maxSize);
      return cache;
    } catch (error) {
      await index?.close().catch(() => undefined);
      await store?.close().catch(() => undefined);
      await lock.release();
      throw new Error(`cannot open the blob cache in ${options.dir}`, { cause: error });
    }
  }

  stat(digest: Digest): BlobEntry | undefined {
    const entry = this.lru.get(digest);
    return entry && { ...entry };
  }

  /**
   * A committed blob's bytes, whole or a range (`end` is clamped to the blob; a range starting past it
   * throws RangeError). Pins the blob against eviction until the stream closes.
   */
  read(digest: Digest, range?: ByteRange): { entry: BlobEntry; stream: Readable } | undefined {
    const entry = this.lru.get(digest);
    if (!entry) return undefined;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? entry.size - 1, entry.size - 1);
    if (range && (!Number.isSafeInteger(start) || !Number.isSafeInteger(range.end) || start < 0 || start >= entry.size || range.end < start)) {
      throw new RangeError(`byte range ${range.start}-${range.end} does not fit ${digest} (${entry.size} bytes)`);
    }
    this.lru.touch(digest, Date.now());
    this.access.mark(digest);
    if (entry.size === 0) return { entry: { ...entry }, stream: Readable.from([], { objectMode: false }) };
    this.lru.pin(digest);
    const stream = this.store.read(digest, { start, end });
    stream.once('close', () => this.unpin(digest));
    stream.once('error', (error) => {
      if (!isCode(error, 'ENOENT') || this.lru.get(digest) !== entry) return;
      // In a shared bucket this is most likely another replica's eviction whose announcement has not
      // arrived yet; the row may even be a new fill's, written just before its commit: forgotten here only.
      if (this.index.feed) return this.forget(entry);
      this.logger.error({ digest, reason: 'file missing', store: this.store.kind }, 'cache: an indexed blob has no file; dropping it');
      void this.remove(entry);
    });
    return { entry: { ...entry }, stream };
  }

  /** The index's leases: fleet-wide jobs and, on a shared index, who fetches which digest. */
  get leases(): LeaseStore {
    return this.index;
  }

  /**
   * On a shared index: a blob another replica committed whose announcement has not arrived yet, taken
   * in from the index (its row, and its object in the store); undefined when there is none, or on a
   * store of this replica's own. Asked before fetching a blob for the fleet, so that the fleet never
   * fetches one it already holds.
   */
  async lookUp(digest: Digest): Promise<BlobEntry | undefined> {
    const known = this.lru.get(digest);
    // A blob this replica is removing (evicted here) is not taken in again from a row about to go.
    if (known || !this.index.feed || this.removals.removing(digest)) return known && { ...known };
    try {
      const row = await this.index.readEntry(digest);
      // A row is written just before its upload completes: only an object makes it a blob.
      if (!row || !(await this.store.stat(digest))) return undefined;
      if (!this.lru.get(digest) && !this.fills.has(digest)) {
        this.removals.cancelDeferred(digest);
        this.lru.insert(row);
      }
      return { ...row };
    } catch (error) {
      this.logger.debug({ err: error, digest }, 'cache: the shared index or store could not be asked for a blob');
      return undefined;
    }
  }

  activeFill(digest: Digest): Fill | undefined {
    return this.waiters.counted(this.fills.get(digest));
  }

  fill(digest: Digest, source: Readable, meta: BlobMeta): Fill {
    this.assertOpen();
    checkSize(meta);
    const active = this.fills.get(digest);
    if (active) return this.waiters.counted(active);
    const fill = new BlobFill(digest, source, meta, this.layout.tmpPath(digest), this.host);
    this.fills.set(digest, fill);
    return this.waiters.counted(fill);
  }

  async put(digest: Digest, bytes: Buffer, meta: BlobMeta): Promise<BlobEntry> {
    this.assertOpen();
    checkSize(meta);
    const existing = this.lru.touch(digest, Date.now());
    if (existing) {
      this.access.mark(digest);
      return { ...existing };
    }
    if (meta.size !== undefined && meta.size !== bytes.length) {
      throw new FillError('size-mismatch', `expected ${meta.size} bytes, got ${bytes.length}`);
    }
    const hex = hasherFor(digest).update(bytes).digest('hex');
    if (hex !== digestHex(digest)) throw new FillError('digest-mismatch', `the body does not match ${digest} (it hashes to ${hex})`);
    const tmpPath = this.layout.tmpPath(digest);
    const now = Date.now();
    const entry: BlobEntry = { digest, size: bytes.length, mediaType: meta.mediaType, kind: meta.kind, created: now, lastAccess: now, source: meta.source };
    const upload = this.store.beginUpload(digest, tmpPath, meta);
    try {
      await writeDurably(tmpPath, bytes);
      await upload.append(bytes);
      await this.install(entry, upload);
    } catch (error) {
      await upload.abort().catch(() => undefined);
      await rm(tmpPath, { force: true });
      throw new FillError('io-error', `cannot store ${digest}`, { cause: error });
    }
    return { ...entry };
  }

  getRecord<T>(key: string): T | undefined {
    return this.records.get(key) as T | undefined;
  }

  /** Keeps a JSON copy, so what is served before a restart is exactly what is served after it. */
  async setRecord<T>(key: string, value: T): Promise<void> {
    this.assertOpen();
    const copy: unknown = JSON.parse(JSON.stringify(value) ?? 'null');
    this.sync?.changing('record', key);
    this.records.set(key, copy);
    if (!(await this.keptIfUnwritten(this.index.putRecord(key, copy), key))) return;
    this.sync?.announce({ type: 'record-set', key });
  }

  /** The keys of the records that start with `prefix`. */
  recordKeys(prefix: string): string[] {
    return [...this.records.keys()].filter((key) => key.startsWith(prefix));
  }

  async deleteRecord(key: string): Promise<void> {
    this.assertOpen();
    this.sync?.changing('record', key);
    this.records.delete(key);
    if (!(await this.keptIfUnwritten(this.index.deleteRecord(key), key))) return;
    this.sync?.announce({ type: 'record-deleted', key });
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
      this.logger.debug({ err: error, key }, 'cache: a record write waits for the index');
      return false;
    }
  }

  /** `waiters`: clients following fills in progress; `evictions`, `evictedBytes`: since this cache was opened. */
  stats(): { entries: number; bytes: number; maxSize: number; activeFills: number; waiters: number; evictions: number; evictedBytes: number } {
    const { evictions, evictedBytes } = this.eviction.totals;
    return { entries: this.lru.count, bytes: this.lru.totalBytes, maxSize: this.maxSize, activeFills: this.fills.size, waiters: this.waiters.count, evictions, evictedBytes };
  }

  /** How many pins there are, and the cached blobs they cover now. */
  async pinStats(): Promise<{ pins: number; pinnedEntries: number; pinnedBytes: number }> {
    const pinned = [...(await this.pins.pinnedDigests())].flatMap((digest) => this.lru.get(digest) ?? []);
    return { pins: this.pins.list().length, pinnedEntries: pinned.length, pinnedBytes: pinned.reduce((sum, entry) => sum + entry.size, 0) };
  }

  /** The blobs and records a scope covers, except pinned ones, ones being filled and (unless `force`) ones an image outside it needs. */
  async purge(scope: CacheScope, options: { force: boolean }): Promise<PurgeResult> {
    this.assertOpen();
    const result = await purgeScope(
      {
        catalog: this.catalog,
        pins: this.pins,
        stat: (digest) => this.lru.get(digest),
        list: () => this.lru.oldestFirst(),
        recordKeys: (prefix) => this.recordKeys(prefix),
        deleteRecord: (key) => this.deleteRecord(key),
        isFilling: (digest) => this.fills.has(digest),
        removeBlobs: (digests) => this.removeBlobs(digests),
      },
      scope,
      options,
    );
    if (result.removed > 0) this.logger.info({ scope: result.scope, removed: result.removed, bytes: result.freedBytes, kept: result.kept.length }, 'cache purged');
    return result;
  }

  /** Removes blobs as eviction does (rows, objects once unread, replicas told), except one a fill is writing. */
  private async removeBlobs(digests: readonly Digest[]): Promise<BlobEntry[]> {
    const victims = digests.flatMap((digest) => (this.fills.has(digest) ? [] : (this.lru.delete(digest) ?? [])));
    if (victims.length === 0) return [];
    await this.dropStored(victims);
    await this.removals.settled();
    return victims.map((entry) => ({ ...entry }));
  }

  /** A cached manifest's bytes for the catalog: no access is counted, and eviction defers its unlink meanwhile. */
  private async readManifest(digest: Digest): Promise<Buffer | null> {
    const entry = this.lru.get(digest);
    if (!entry || entry.kind !== 'manifest' || entry.size > MAX_MANIFEST_BYTES) return null;
    if (entry.size === 0) return Buffer.alloc(0);
    const failed = (error: unknown): null => {
      this.logger.debug({ err: error, digest }, 'cache: a manifest could not be read for the catalog');
      return null;
    };
    this.lru.pin(digest);
    let stream: Readable;
    try {
      stream = this.store.read(digest, { start: 0, end: entry.size - 1 });
    } catch (error) {
      this.unpin(digest);
      return failed(error);
    }
    stream.once('close', () => this.unpin(digest));
    return readLimited(stream, MAX_MANIFEST_BYTES).catch(failed);
  }

  /** Most recently used first. */
  list(): BlobEntry[] {
    return this.lru.newestFirst().map((entry) => ({ ...entry }));
  }

  /**
   * Evicts down to `maxSize` (default: the configured cap) and waits for every removal under way, including
   * those a commit started. A blob being read here keeps its bytes until its reader closes. On a shared
   * index this evicts for the fleet, under the eviction lease (waiting for it while another replica holds it).
   */
  async prune(maxSize = this.maxSize): Promise<{ removed: number; freedBytes: number }> {
    const result = await this.eviction.prune(maxSize);
    await this.removals.settled();
    return result;
  }

  /**
   * Re-hashes every committed blob and removes those whose bytes no longer match their digest (for the
   * fleet, on a shared index); one missing from a shared bucket is only forgotten here (blob-verify.ts).
   */
  async verify(): Promise<{ checked: number; removed: Digest[] }> {
    return verifyBlobs({
      logger: this.logger,
      lru: this.lru,
      store: this.store,
      shared: this.index.feed !== undefined,
      isClosed: () => this.closed,
      remove: (entry) => this.remove(entry),
      forget: (entry) => this.forget(entry),
    });
  }

  /**
   * A short-lived URL of the committed blob in its store, for a client to fetch it there (BLOB_REDIRECT=presigned);
   * null when the blob is not cached (or no longer in the store). Rejects with BlobStoreUnavailableError when the
   * store cannot be asked: the caller serves the bytes another way.
   */
  async presignedUrl(digest: Digest, expiresInSeconds: number): Promise<string | null> {
    const entry = this.lru.get(digest);
    if (!entry) return null;
    // A URL is only worth giving when the client will find the object there: a store that is down (or an
    // object gone) would fail the client's pull, where bytes served by Layover would not.
    let stored: Awaited<ReturnType<BlobStore['stat']>>;
    try {
      stored = await this.store.stat(digest);
    } catch (error) {
      throw new BlobStoreUnavailableError(`the ${this.store.kind} store cannot be asked for ${digest}`, { cause: error });
    }
    if (!stored) {
      if (this.lru.get(digest) === entry) {
        if (this.index.feed) this.forget(entry);
        else void this.remove(entry);
      }
      return null;
    }
    this.lru.touch(digest, Date.now());
    this.access.mark(digest);
    return this.store.presignedUrl(digest, expiresInSeconds);
  }

  /** Drops fills in progress, writes batched access times, closes sqlite and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.eviction.stop();
    this.sync?.stop();
    const fills = [...this.fills.values()];
    for (const fill of fills) fill.abort();
    await Promise.allSettled(fills.map((fill) => fill.done));
    await this.removals.settled();
    await this.access.stop();
    await this.index.close();
    await this.store.close();
    await this.lock.release();
  }

  private async commitFill(fill: BlobFill, upload: BlobUpload, size: number): Promise<BlobEntry> {
    const now = Date.now();
    const { mediaType, kind, source } = fill.meta;
    const entry: BlobEntry = { digest: fill.digest, size, mediaType, kind, created: now, lastAccess: now, source };
    await this.install(entry, upload, () => this.host.abandon(fill));
    return { ...entry };
  }

  /**
   * Indexes a verified temp file, commits its upload (a rename into place, or the completion of an S3
   * upload) and makes it visible. The row is written first: a crash in between leaves a row without a
   * blob, which reconcile drops; the other order would leave a blob to re-hash and lose its media type.
   */
  private async install(entry: BlobEntry, upload: BlobUpload, beforeVisible?: () => void): Promise<void> {
    const { digest } = entry;
    this.sync?.changing('blob', digest);
    // An entry being replaced leaves the LRU first: from here until the rename nothing can schedule an
    // unlink of this name, and one already under way is awaited.
    this.lru.delete(digest);
    await this.removals.clear(digest);
    let indexed = true;
    try {
      await this.index.putEntry(entry);
    } catch (error) {
      // The blob is good and is served; the row is retried with the next access flush.
      indexed = false;
      this.logger.error({ err: error, digest }, 'cache index write failed');
    }
    try {
      await upload.commit(entry.size);
    } catch (error) {
      if (indexed) await this.index.deleteEntries([digest]).catch(() => undefined);
      throw error;
    }
    beforeVisible?.();
    this.lru.insert(entry);
    // Only now is the object readable in the store for every replica.
    this.sync?.announce({ type: 'committed', entry: { ...entry } });
    if (!indexed) this.access.mark(digest);
    this.eviction.request();
  }

  private evictionHost(): EvictionHost {
    return { logger: this.logger, lru: this.lru, store: this.store, remove: (victims) => this.dropStored(victims), kept: () => this.pins.kept() };
  }

  /** Forgets a blob gone from a shared store on this replica only; its row and object are the fleet's. */
  private forget(entry: BlobEntry): void {
    this.logger.warn({ digest: entry.digest, reason: 'object missing', store: this.store.kind }, 'cache: a blob is gone from the shared store; forgetting it');
    this.sync?.changing('blob', entry.digest);
    this.lru.delete(entry.digest);
  }

  /** Forgets an entry now; its object goes now, or when its last reader here closes. Never rejects. */
  private remove(entry: BlobEntry): Promise<void> {
    this.lru.delete(entry.digest);
    return this.dropStored([entry]);
  }

  /**
   * Deletes the rows and objects of entries already out of the LRU and tells the other replicas. An object
   * being read here keeps its bytes until its last reader closes (Linux keeps an open file readable; an S3
   * GET under way finishes). Resolves once the announcement is sent: the eviction lease is released only
   * after that, so that its next holder has most likely heard of every removal before it picks victims.
   */
  private async dropStored(victims: BlobEntry[]): Promise<void> {
    const digests = victims.map((entry) => entry.digest);
    for (const digest of digests) this.sync?.changing('blob', digest);
    const change: IndexChange = { type: 'removed', digests };
    const announced = this.sync && this.index.feed ? this.index.feed.publish(change, this.sync.id) : undefined;
    const rows = this.index.deleteEntries(digests).catch((error: unknown) => {
      // Rows left behind point at missing objects; the next open drops them.
      this.logger.error({ err: error, count: digests.length }, 'cache index: rows of removed blobs not deleted');
    });
    const unlinks = digests.map((digest) => {
      if (!this.lru.isPinned(digest)) return this.removals.unlink(digest);
      this.removals.defer(digest);
      return undefined;
    });
    await Promise.all([announced, rows, ...unlinks]);
  }

  private syncHost(): SyncHost {
    return {
      logger: this.logger,
      index: this.index,
      store: this.store,
      lru: this.lru,
      records: this.records,
      insert: (entry) => {
        this.removals.cancelDeferred(entry.digest);
        this.lru.insert(entry);
      },
      isFilling: (digest) => this.fills.has(digest),
      isUnwritten: (digest) => this.access.isMarked(digest),
    };
  }

  private unpin(digest: Digest): void {
    if (this.lru.unpin(digest) > 0) return;
    this.removals.released(digest);
  }

  private assertOpen(): void {
    if (this.closed) throw new FillError('closed', 'the blob cache is closed');
  }
}

function checkSize(meta: BlobMeta): void {
  if (meta.size !== undefined && !(Number.isSafeInteger(meta.size) && meta.size >= 0)) {
    throw new RangeError(`blob size: expected a byte count, got ${meta.size}`);
  }
}
