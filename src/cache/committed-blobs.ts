import { rm } from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, hasherFor, type Digest } from '../registry/digest.js';
import type { AccessRecorder } from './access-recorder.js';
import type { BlobRemovals } from './blob-removals.js';
import type { BlobStore, BlobUpload } from './blob-store.js';
import type { BlobEntry, BlobMeta } from './blob-types.js';
import type { CacheIndex, IndexChange } from './cache-index.js';
import type { CacheLayout } from './cache-layout.js';
import { writeDurably } from './durable-files.js';
import { FillError } from './fill-error.js';
import type { LruIndex } from './lru-index.js';
import type { ReplicaSync } from './replica-sync.js';

/** What of a BlobCache commits and removals change; the cache owns all of it. */
export interface CommitHost {
  readonly logger: FastifyBaseLogger;
  readonly layout: CacheLayout;
  readonly lru: LruIndex;
  readonly index: CacheIndex;
  readonly store: BlobStore;
  readonly removals: BlobRemovals;
  readonly access: AccessRecorder;
  /** Shared indexes only: other replicas' changes in, this one's out. */
  readonly sync: ReplicaSync | undefined;
  /** A commit grew the cache: eviction runs if it is over its cap. */
  requestEviction(): void;
}

/**
 * The committed blobs' four views kept in step: this replica's LRU, the index's rows, the store's objects
 * and what the other replicas are told. Every commit and every removal of a blob goes through here.
 */
export class CommittedBlobs {
  private readonly host: CommitHost;

  constructor(host: CommitHost) {
    this.host = host;
  }

  /**
   * Stores bytes already in memory (verified against `digest` first); a blob already cached is only
   * touched, its bytes not looked at (`stored` false).
   */
  async put(digest: Digest, bytes: Buffer, meta: BlobMeta): Promise<{ entry: BlobEntry; stored: boolean }> {
    const { lru, store } = this.host;
    const existing = lru.touch(digest, Date.now());
    if (existing) {
      this.host.access.mark(digest);
      return { entry: { ...existing }, stored: false };
    }
    if (meta.size !== undefined && meta.size !== bytes.length) {
      throw new FillError('size-mismatch', `expected ${meta.size} bytes, got ${bytes.length}`);
    }
    const hex = hasherFor(digest).update(bytes).digest('hex');
    if (hex !== digestHex(digest)) throw new FillError('digest-mismatch', `the body does not match ${digest} (it hashes to ${hex})`);
    const tmpPath = this.host.layout.tmpPath(digest);
    const now = Date.now();
    const entry: BlobEntry = { digest, size: bytes.length, mediaType: meta.mediaType, kind: meta.kind, created: now, lastAccess: now, source: meta.source };
    const upload = store.beginUpload(digest, tmpPath, meta);
    try {
      await writeDurably(tmpPath, bytes);
      await upload.append(bytes);
      await this.install(entry, upload);
    } catch (error) {
      await upload.abort().catch(() => undefined);
      await rm(tmpPath, { force: true });
      throw new FillError('io-error', `cannot store ${digest}`, { cause: error });
    }
    return { entry: { ...entry }, stored: true };
  }

  /**
   * Indexes a verified temp file, commits its upload (a rename into place, or the completion of an S3
   * upload) and makes it visible. The row is written first: a crash in between leaves a row without a
   * blob, which reconcile drops; the other order would leave a blob to re-hash and lose its media type.
   */
  async install(entry: BlobEntry, upload: BlobUpload, beforeVisible?: () => void): Promise<void> {
    const { lru, index, removals, sync } = this.host;
    const { digest } = entry;
    sync?.changing('blob', digest);
    // An entry being replaced leaves the LRU first: from here until the rename nothing can schedule an
    // unlink of this name, and one already under way is awaited.
    lru.delete(digest);
    await removals.clear(digest);
    let indexed = true;
    try {
      await index.putEntry(entry);
    } catch (error) {
      // The blob is good and is served; the row is retried with the next access flush.
      indexed = false;
      this.host.logger.error({ err: error, digest }, 'cache index write failed');
    }
    try {
      await upload.commit(entry.size);
    } catch (error) {
      if (indexed) await index.deleteEntries([digest]).catch(() => undefined);
      throw error;
    }
    beforeVisible?.();
    lru.insert(entry);
    // Only now is the object readable in the store for every replica.
    sync?.announce({ type: 'committed', entry: { ...entry } });
    if (!indexed) this.host.access.mark(digest);
    this.host.requestEviction();
  }

  /** Makes a blob another replica committed a hit here. */
  adopt(entry: BlobEntry): void {
    this.host.removals.cancelDeferred(entry.digest);
    this.host.lru.insert(entry);
  }

  /** Forgets a blob gone from a shared store on this replica only; its row and object are the fleet's. */
  forget(entry: BlobEntry): void {
    this.host.logger.warn({ digest: entry.digest, reason: 'object missing', store: this.host.store.kind }, 'cache: a blob is gone from the shared store; forgetting it');
    this.host.sync?.changing('blob', entry.digest);
    this.host.lru.delete(entry.digest);
  }

  /** Forgets an entry now; its object goes now, or when its last reader here closes. Never rejects. */
  remove(entry: BlobEntry): Promise<void> {
    this.host.lru.delete(entry.digest);
    return this.drop([entry]);
  }

  /**
   * Deletes the rows and objects of entries already out of the LRU and tells the other replicas. An object
   * being read here keeps its bytes until its last reader closes (Linux keeps an open file readable; an S3
   * GET under way finishes). Resolves once the announcement is sent: the eviction lease is released only
   * after that, so that its next holder has most likely heard of every removal before it picks victims.
   */
  async drop(victims: BlobEntry[]): Promise<void> {
    const { lru, index, removals, sync } = this.host;
    const digests = victims.map((entry) => entry.digest);
    for (const digest of digests) sync?.changing('blob', digest);
    const change: IndexChange = { type: 'removed', digests };
    const announced = sync && index.feed ? index.feed.publish(change, sync.id) : undefined;
    const rows = index.deleteEntries(digests).catch((error: unknown) => {
      // Rows left behind point at missing objects; the next open drops them.
      this.host.logger.error({ err: error, count: digests.length }, 'cache index: rows of removed blobs not deleted');
    });
    const unlinks = digests.map((digest) => {
      if (!lru.isPinned(digest)) return removals.unlink(digest);
      removals.defer(digest);
      return undefined;
    });
    await Promise.all([announced, rows, ...unlinks]);
  }
}
