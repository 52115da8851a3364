import { MAX_MANIFEST_BYTES } from '../registry/media-types.js';
import { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { readLimited } from '../upstream/read-limited.js';
import type { AccessRecorder } from './access-recorder.js';
import type { BlobRemovals } from './blob-removals.js';
import { BlobStoreUnavailableError, type BlobStore, SHORT_BLOB } from './blob-store.js';
import type { BlobEntry, ByteRange } from './blob-types.js';
import type { CacheIndex } from './cache-index.js';
import type { CommittedBlobs } from './committed-blobs.js';
import { isCode } from './durable-files.js';
import type { LruIndex } from './lru-index.js';
import { SmallBlobMemory } from './small-blob-memory.js';

/** Thousands of typical manifests and configs (a few KiB each); an image index of a few hundred platforms still fits. */
const MEMORY_BYTES = 32 * 1024 * 1024;
const MEMORY_ENTRY_BYTES = 1024 * 1024;

/** What of a BlobCache reads use; the cache owns all of it. */
export interface ReaderHost {
  readonly logger: FastifyBaseLogger;
  readonly lru: LruIndex;
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly removals: BlobRemovals;
  readonly access: AccessRecorder;
  readonly committed: CommittedBlobs;
  /** A fill of this digest runs here: it commits its own entry. */
  isFilling(digest: Digest): boolean;
}

/**
 * Reads of committed blobs: their bytes from the store (pinned against eviction while read), a URL of
 * them in the store, and on a shared index a blob another replica committed. A blob found gone from its
 * store is dropped (or, from a shared store, only forgotten here).
 */
export class BlobReader {
  private readonly host: ReaderHost;
  private readonly memory = new SmallBlobMemory(MEMORY_BYTES, MEMORY_ENTRY_BYTES);

  constructor(host: ReaderHost) {
    this.host = host;
  }

  /**
   * A committed blob's bytes, whole or a range (`end` is clamped to the blob; a range starting past it
   * throws RangeError). Pins the blob against eviction until the stream closes.
   */
  read(digest: Digest, range?: ByteRange): { entry: BlobEntry; stream: Readable } | undefined {
    const { lru, store } = this.host;
    const entry = lru.get(digest);
    if (!entry) return undefined;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? entry.size - 1, entry.size - 1);
    if (range && (!Number.isSafeInteger(start) || !Number.isSafeInteger(range.end) || start < 0 || start >= entry.size || range.end < start)) {
      throw new RangeError(`byte range ${range.start}-${range.end} does not fit ${digest} (${entry.size} bytes)`);
    }
    lru.touch(digest, Date.now());
    this.host.access.mark(digest);
    if (entry.size === 0) return { entry: { ...entry }, stream: Readable.from([], { objectMode: false }) };
    lru.pin(digest);
    const stream = store.read(digest, { start, end });
    stream.once('close', () => this.unpin(digest));
    stream.once('error', (error) => {
      if (lru.get(digest) !== entry) return;
      if (isCode(error, SHORT_BLOB)) {
        // Damaged (commits store whole blobs): served, every read of it would break off at the same byte.
        this.host.logger.error({ digest, reason: 'file short', store: store.kind }, 'cache: a stored blob holds fewer bytes than its index says; dropping it');
        return void this.host.committed.remove(entry);
      }
      if (!isCode(error, 'ENOENT')) return;
      // In a shared bucket this is most likely another replica's eviction whose announcement has not
      // arrived yet; the row may even be a new fill's, written just before its commit: forgotten here only.
      if (this.host.index.feed) return this.host.committed.forget(entry);
      this.host.logger.error({ digest, reason: 'file missing', store: store.kind }, 'cache: an indexed blob has no file; dropping it');
      void this.host.committed.remove(entry);
    });
    return { entry: { ...entry }, stream };
  }

  /**
   * readBytes of a blob already held in memory, answered at once (and counted as an access);
   * undefined when it is not cached or not held (readBytes reads it from the store).
   */
  heldBytes(digest: Digest): { entry: BlobEntry; bytes: Buffer } | undefined {
    const { lru, access } = this.host;
    const entry = lru.get(digest);
    const held = entry && this.memory.get(digest);
    if (!held) return undefined;
    lru.touch(digest, Date.now());
    access.mark(digest);
    return { entry: { ...entry }, bytes: held };
  }

  /**
   * Keeps a blob's bytes in memory, as its first readBytes would: bytes just stored and verified against
   * its digest (BlobCache.put). Not for a blob removed meanwhile (heldBytes would not answer it anyway).
   */
  hold(digest: Digest, bytes: Buffer): void {
    if (this.host.lru.get(digest)?.size === bytes.length) this.memory.set(digest, bytes);
  }

  /**
   * A committed small blob's whole bytes (a manifest, a small blob's whole GET), counted as an access like
   * `read`: from memory when held there, else read once from the store and kept. Undefined when the blob
   * is not cached; null when it is bigger than `limit`. The index is asked first every time, so a blob
   * evicted or purged is not answered from memory.
   */
  async readBytes(digest: Digest, limit: number): Promise<{ entry: BlobEntry; bytes: Buffer } | null | undefined> {
    const entry = this.host.lru.get(digest);
    if (!entry) return undefined;
    if (entry.size > limit) return null;
    const held = this.heldBytes(digest);
    if (held) return held;
    const read = this.read(digest);
    if (!read) return undefined;
    const bytes = await readLimited(read.stream, limit);
    if (bytes === null || bytes.length !== entry.size) {
      throw new Error(`cache: ${digest} has ${bytes === null ? `more than ${limit}` : bytes.length} bytes in its store, ${entry.size} in the index`);
    }
    this.memory.set(digest, bytes);
    return { entry: read.entry, bytes };
  }

  /** A cached manifest's bytes for the catalog: no access is counted, and eviction defers its unlink meanwhile. */
  async readManifest(digest: Digest): Promise<Buffer | null> {
    const { lru, store } = this.host;
    const entry = lru.get(digest);
    if (!entry || entry.kind !== 'manifest' || entry.size > MAX_MANIFEST_BYTES) return null;
    if (entry.size === 0) return Buffer.alloc(0);
    // Rejects, unlike a manifest that is not cached: what pins and purges protect depends on it.
    const failed = (error: unknown): never => {
      this.host.logger.debug({ err: error, digest }, 'cache: a manifest could not be read for the catalog');
      throw error;
    };
    lru.pin(digest);
    let stream: Readable;
    try {
      stream = store.read(digest, { start: 0, end: entry.size - 1 });
    } catch (error) {
      this.unpin(digest);
      return failed(error);
    }
    stream.once('close', () => this.unpin(digest));
    return readLimited(stream, MAX_MANIFEST_BYTES).catch(failed);
  }

  /**
   * A short-lived URL of the committed blob in its store, for a client to fetch it there (BLOB_REDIRECT=presigned);
   * null when the blob is not cached (or no longer in the store). Rejects with BlobStoreUnavailableError when the
   * store cannot be asked: the caller serves the bytes another way.
   */
  async presignedUrl(digest: Digest, expiresInSeconds: number): Promise<string | null> {
    const { lru, store, committed } = this.host;
    const entry = lru.get(digest);
    if (!entry) return null;
    // A URL is only worth giving when the client will find the object there: a store that is down (or an
    // object gone) would fail the client's pull, where bytes served by Layover would not.
    let stored: Awaited<ReturnType<BlobStore['stat']>>;
    try {
      stored = await store.stat(digest);
    } catch (error) {
      throw new BlobStoreUnavailableError(`the ${store.kind} store cannot be asked for ${digest}`, { cause: error });
    }
    if (!stored) {
      if (lru.get(digest) === entry) {
        if (this.host.index.feed) committed.forget(entry);
        else void committed.remove(entry);
      }
      return null;
    }
    lru.touch(digest, Date.now());
    this.host.access.mark(digest);
    return store.presignedUrl(digest, expiresInSeconds);
  }

  /**
   * On a shared index: a blob another replica committed whose announcement has not arrived yet, taken
   * in from the index (its row, and its object in the store); undefined when there is none, or on a
   * store of this replica's own. Asked before fetching a blob for the fleet, so that the fleet never
   * fetches one it already holds.
   */
  async lookUp(digest: Digest): Promise<BlobEntry | undefined> {
    const { lru, index } = this.host;
    const known = lru.get(digest);
    // A blob this replica is removing (evicted here) is not taken in again from a row about to go.
    if (known || !index.feed || this.host.removals.removing(digest)) return known && { ...known };
    try {
      const row = await index.readEntry(digest);
      // A row is written just before its upload completes: only an object makes it a blob.
      if (!row || !(await this.host.store.stat(digest))) return undefined;
      // An eviction here may have begun removing it meanwhile: its row and object are going.
      if (this.host.removals.removing(digest)) return undefined;
      if (!lru.get(digest) && !this.host.isFilling(digest)) this.host.committed.adopt(row);
      return { ...row };
    } catch (error) {
      this.host.logger.debug({ err: error, digest }, 'cache: the shared index or store could not be asked for a blob');
      return undefined;
    }
  }

  private unpin(digest: Digest): void {
    if (this.host.lru.unpin(digest) > 0) return;
    this.host.removals.released(digest);
  }
}
