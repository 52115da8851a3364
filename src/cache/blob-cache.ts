import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { AccessRecorder } from './access-recorder.js';
import { ActiveFills } from './active-fills.js';
import { BlobEviction, type EvictionHost } from './blob-eviction.js';
import { BlobReader } from './blob-reader.js';
import { BlobRemovals } from './blob-removals.js';
import { verifyBlobs } from './blob-verify.js';
import type { BlobStore } from './blob-store.js';
import { createBlobStore } from './blob-stores/create-blob-store.js';
import type { BlobCacheOptions, BlobEntry, BlobMeta, ByteRange, Fill, FillOptions } from './blob-types.js';
import { CacheAdmin } from './cache-admin.js';
import { CacheLayout } from './cache-layout.js';
import { CacheRecords, type RecordMerge } from './cache-records.js';
import { CommittedBlobs } from './committed-blobs.js';
import { DirectoryLock } from './directory-lock.js';
import { FillError } from './fill-error.js';
import type { CacheIndex, LeaseStore } from './cache-index.js';
import { openCacheIndex } from './indexes/open-cache-index.js';
import { LruIndex } from './lru-index.js';
import { emptySpool, reconcile, reconcileWhileServing, type ServingCache } from './reconcile.js';
import { ReplicaSync, type SyncHost } from './replica-sync.js';
import { CachePins } from './cache-pins.js';
import type { PurgeResult } from './cache-purge.js';
import type { CacheScope } from './cache-scope.js';
import { ImageCatalog } from './image-catalog.js';

export type { BlobCacheOptions, BlobEntry, BlobKind, BlobMeta, ByteRange, Fill } from './blob-types.js';
export { FillError, type FillFailure } from './fill-error.js';
export { DirectoryLockedError } from './directory-lock.js';
export { BlobStoreUnavailableError } from './blob-store.js';

const DEFAULT_ACCESS_FLUSH_MS = 5_000;
/**
 * The reconcile while serving begins this long after open, or as soon as someone waits for it: listing
 * 100,000 files took the CPU and the thread pool that the start of the listeners needs.
 */
const RECONCILE_DELAY_MS = 2_000;
const DEFAULT_RELAY_WINDOW_BYTES = 16 * 1024 * 1024;

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
  private readonly logger: FastifyBaseLogger;
  private readonly maxSize: number;
  private readonly lock: DirectoryLock;
  private readonly index: CacheIndex;
  private readonly store: BlobStore;
  private readonly records: CacheRecords;
  private readonly lru = new LruIndex();
  private readonly access: AccessRecorder;
  private readonly fills: ActiveFills;
  private readonly removals: BlobRemovals;
  private readonly committed: CommittedBlobs;
  private readonly reader: BlobReader;
  private readonly admin: CacheAdmin;
  private readonly eviction: BlobEviction;
  /** Images as the cache knows them: tags, manifests and what they reference (the admin API, purges, pins). */
  readonly catalog: ImageCatalog;
  /** Scopes never evicted (records: durable and shared). */
  readonly pins: CachePins;
  /** Shared indexes only: other replicas' changes in, this one's out. */
  private readonly sync: ReplicaSync | undefined;
  private closed = false;
  /** The reconcile of an index of this process's own, run while serving (reconcile.ts); settled at once otherwise. */
  private reconciling: Promise<void> = Promise.resolve();
  /** Begins the reconcile now instead of after RECONCILE_DELAY_MS (none once it has begun). */
  private beginReconcile: (() => void) | undefined;

  private constructor(options: BlobCacheOpenOptions, parts: { layout: CacheLayout; lock: DirectoryLock; store: BlobStore; index: CacheIndex; records: Map<string, unknown>; sync: ReplicaSync | undefined }) {
    const { layout, lock, store, index, sync } = parts;
    this.store = store;
    this.logger = options.logger;
    this.maxSize = options.maxSize;
    this.lock = lock;
    this.index = index;
    this.sync = sync;
    const { logger, lru } = this;
    this.records = new CacheRecords(parts.records, { logger, index, sync, assertOpen: () => this.assertOpen() });
    this.removals = new BlobRemovals(store, logger);
    this.catalog = new ImageCatalog({
      stat: (digest) => lru.get(digest),
      list: () => lru.oldestFirst(),
      recordKeys: (prefix) => this.recordKeys(prefix),
      getRecord: (key) => this.getRecord(key),
      readManifest: (digest) => this.reader.readManifest(digest),
    });
    this.pins = new CachePins(this, this.catalog, logger);
    this.records.onChange((key, before, after) => this.pins.recordChanged(key, before, after));
    lru.onInsert((entry) => this.pins.entryInserted(entry));
    this.eviction = new BlobEviction(this.evictionHost(), {
      maxSize: this.maxSize,
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(index.feed ? { leases: index } : {}),
      ...(options.fleetEvictionCheckMs === undefined ? {} : { fleetCheckMs: options.fleetEvictionCheckMs }),
    });
    this.access = new AccessRecorder(options.accessFlushMs ?? DEFAULT_ACCESS_FLUSH_MS, (d) => lru.get(d), index, logger);
    const { access, removals } = this;
    const isFilling = (digest: Digest): boolean => this.fills.has(digest);
    this.committed = new CommittedBlobs({ logger, layout, lru, index, store, removals, access, sync, requestEviction: () => this.eviction.request() });
    const { committed } = this;
    this.reader = new BlobReader({ logger, lru, index, store, removals, access, committed, isFilling });
    this.admin = new CacheAdmin({ logger, lru, removals, committed, records: this.records, catalog: this.catalog, pins: this.pins, isFilling });
    this.fills = new ActiveFills({
      logger,
      layout,
      stallTimeoutMs: options.stallTimeoutMs,
      maxBytes: this.maxSize,
      relayWindowBytes: options.relayWindowBytes ?? DEFAULT_RELAY_WINDOW_BYTES,
      beginUpload: (digest, tmpPath, meta) => store.beginUpload(digest, tmpPath, meta),
      install: (entry, upload, beforeVisible) => committed.install(entry, upload, beforeVisible),
      readCommitted: (digest, range) => this.read(digest, range)?.stream,
    });
  }

  /**
   * Takes the directory lock, checks that the blob store can be used (BlobStoreUnavailableError otherwise),
   * empties the spool directory, rebuilds the LRU order from the index, and reconciles store and index
   * after a crash: on a shared index or a bucket before it resolves, for files under its own index while
   * it already serves (`reconciled()`; reconcile.ts says why that is safe).
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
      // Files of this process's own, under an index of its own: served first, compared after. A bucket
      // (or a shared index) is compared first: a new replica's empty index would otherwise send to the
      // upstream what the bucket already holds.
      const serveFirst = !sync && store.kind === 'file';
      // Fills spool there as soon as this resolves: emptied first in either case.
      const tmpRemoved = serveFirst ? await emptySpool(layout) : 0;
      const entries = serveFirst ? loaded.entries : await reconcile(layout, store, loaded, index, options.logger);
      const cache = new BlobCache(options, { layout, lock, store, index, records: loaded.records, sync });
      cache.lru.load(entries);
      sync?.attach(cache.syncHost());
      if (sync) index.onReplayed?.(() => sync.announce({ type: 'replayed' }));
      // The cap may have been lowered since the last run.
      await cache.eviction.evict(cache.maxSize);
      const [openedStore, openedIndex] = [store, index];
      if (serveFirst) cache.deferReconcile(() => reconcileWhileServing(openedStore, loaded, openedIndex, options.logger, cache.servingHost(), tmpRemoved));
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
    return this.reader.read(digest, range);
  }

  /** A committed small blob's whole bytes, held in memory after the first read (BlobReader.readBytes). */
  readBytes(digest: Digest, limit: number): Promise<{ entry: BlobEntry; bytes: Buffer } | null | undefined> {
    return this.reader.readBytes(digest, limit);
  }

  /** readBytes of a blob held in memory, without waiting: undefined when it is not cached or not held (BlobReader.heldBytes). */
  heldBytes(digest: Digest): { entry: BlobEntry; bytes: Buffer } | undefined {
    return this.reader.heldBytes(digest);
  }

  /** The index's leases: fleet-wide jobs and, on a shared index, who fetches which digest. */
  get leases(): LeaseStore {
    return this.index;
  }

  /** On a shared index: a blob another replica committed and this one has not heard of yet (BlobReader.lookUp). */
  lookUp(digest: Digest): Promise<BlobEntry | undefined> {
    return this.reader.lookUp(digest);
  }

  activeFill(digest: Digest): Fill | undefined {
    return this.fills.active(digest);
  }

  fill(digest: Digest, source: Readable, meta: BlobMeta, options: FillOptions = {}): Fill {
    this.assertOpen();
    checkSize(meta);
    return this.fills.start(digest, source, meta, options);
  }

  /**
   * Stores a blob whose bytes are in memory (a manifest), verified first. Bytes it stored are held in
   * memory at once (BlobReader.hold): the hits that follow a manifest's fill are answered without
   * reading it back from the store.
   */
  async put(digest: Digest, bytes: Buffer, meta: BlobMeta): Promise<BlobEntry> {
    this.assertOpen();
    checkSize(meta);
    const { entry, stored } = await this.committed.put(digest, bytes, meta);
    if (stored) this.reader.hold(digest, bytes);
    return entry;
  }

  getRecord<T>(key: string): T | undefined {
    return this.records.get<T>(key);
  }

  /** Keeps a JSON copy, so what is served before a restart is exactly what is served after it. */
  setRecord<T>(key: string, value: T): Promise<void> {
    return this.records.set(key, value);
  }

  /** Records under `prefix` are merged with another replica's value when it arrives (CacheRecords.mergeUnder). */
  mergeRecords(prefix: string, merge: RecordMerge): void {
    this.records.mergeUnder(prefix, merge);
  }

  /** The keys of the records that start with `prefix`. */
  recordKeys(prefix: string): string[] {
    return this.records.keys(prefix);
  }

  deleteRecord(key: string): Promise<void> {
    return this.records.delete(key);
  }

  /** `waiters`: clients following fills in progress; `evictions`, `evictedBytes`: since this cache was opened. */
  stats(): { entries: number; bytes: number; maxSize: number; activeFills: number; waiters: number; evictions: number; evictedBytes: number } {
    const { evictions, evictedBytes } = this.eviction.totals;
    return { entries: this.lru.count, bytes: this.lru.totalBytes, maxSize: this.maxSize, activeFills: this.fills.size, waiters: this.fills.waiterCount, evictions, evictedBytes };
  }

  /** How many pins there are, and the cached blobs they cover now. */
  pinStats(): Promise<{ pins: number; pinnedEntries: number; pinnedBytes: number }> {
    return this.admin.pinStats();
  }

  /** The blobs and records a scope covers, except pinned ones, ones being filled and (unless `force`) ones an image outside it needs. */
  async purge(scope: CacheScope, options: { force: boolean }): Promise<PurgeResult> {
    this.assertOpen();
    return this.admin.purge(scope, options);
  }

  /** Resolves once the reconcile that open() began while serving has ended (at once when there is none). */
  reconciled(): Promise<void> {
    this.beginReconcile?.();
    return this.reconciling;
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
    // A row the reconcile drops is a crash's leftover, not a blob that went bad.
    await this.reconciled();
    return verifyBlobs({
      logger: this.logger,
      lru: this.lru,
      store: this.store,
      shared: this.index.feed !== undefined,
      isClosed: () => this.closed,
      remove: (entry) => this.committed.remove(entry),
      forget: (entry) => this.committed.forget(entry),
    });
  }

  /** A short-lived URL of the committed blob in its store (BLOB_REDIRECT=presigned); see BlobReader.presignedUrl. */
  presignedUrl(digest: Digest, expiresInSeconds: number): Promise<string | null> {
    return this.reader.presignedUrl(digest, expiresInSeconds);
  }

  /** Drops fills in progress, writes batched access times, closes sqlite and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.eviction.stop();
    // One not begun yet is left to the next start.
    await this.reconciled();
    this.sync?.stop();
    await this.fills.abortAll();
    await this.removals.settled();
    await this.access.stop();
    await this.index.close();
    await this.store.close();
    await this.lock.release();
  }

  private evictionHost(): EvictionHost {
    return {
      logger: this.logger,
      lru: this.lru,
      store: this.store,
      remove: (victims) => this.committed.drop(victims),
      isFilling: (digest) => this.fills.has(digest),
      kept: () => this.pins.kept(),
    };
  }

  private deferReconcile(run: () => Promise<void>): void {
    this.reconciling = new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.beginReconcile?.(), RECONCILE_DELAY_MS);
      // The delay alone must not keep a process alive that has nothing else to do.
      timer.unref();
      this.beginReconcile = () => {
        clearTimeout(timer);
        this.beginReconcile = undefined;
        resolve(this.closed ? undefined : run());
      };
    });
  }

  private servingHost(): ServingCache {
    return {
      lru: this.lru,
      isFilling: (digest) => this.fills.has(digest),
      isRemoving: (digest) => this.removals.removing(digest),
      isClosed: () => this.closed,
      insert: (entry) => this.committed.adopt(entry),
      requestEviction: () => this.eviction.request(),
    };
  }

  private syncHost(): SyncHost {
    return {
      logger: this.logger,
      index: this.index,
      store: this.store,
      lru: this.lru,
      records: this.records.synced,
      insert: (entry) => this.committed.adopt(entry),
      isFilling: (digest) => this.fills.has(digest),
      isUnwritten: (digest) => this.access.isMarked(digest),
    };
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
