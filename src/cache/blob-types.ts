import type { Metrics } from '../metrics/metrics.js';
import type { BlobStoreConfig, CacheIndexConfig } from '../config/shared-stores.js';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';

// The blob cache's vocabulary, kept apart from the class so that its helpers (fill, index, reconcile)
// can share it without importing the facade. `blob-cache.ts` re-exports all of it.

export type BlobKind = 'blob' | 'manifest';

export interface BlobEntry {
  digest: Digest;
  size: number;
  mediaType: string | null;
  kind: BlobKind;
  /** Epoch ms. */
  created: number;
  /** Epoch ms. */
  lastAccess: number;
  /** Where it was first fetched, e.g. "quay.io/org/repo". */
  source: string;
}

export interface BlobMeta {
  /** Expected size (from Content-Length); a body of another size is rejected. */
  size?: number;
  mediaType: string | null;
  kind: BlobKind;
  source: string;
}

/** How a fill may treat its source. */
export interface FillOptions {
  /**
   * The source hands each chunk over for good, each the whole of a buffer of its own (an undici body:
   * one TLS record each): the fill frees a chunk's memory as soon as the chunk is on disk and taken by
   * the store, instead of leaving it to the garbage collector.
   */
  readonly freesChunks?: boolean;
}

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export interface Fill {
  readonly digest: Digest;
  readonly meta: BlobMeta;
  /**
   * A stream of the blob as it is being downloaded (from `range.start`, default 0), following the growing
   * temp file. It never emits the blob's final byte, nor the range's last one, before the digest has been verified; on mismatch,
   * truncation, upstream error or write timeout it is destroyed with an error. When the temp file fails
   * (a full disk), `done` rejects but the streams already handed out go on with bytes from memory; a
   * stream asked for after that fails at once.
   */
  reader(range?: ByteRange): Readable;
  /** True once the digest matched: every byte the fill holds is then known to be right. */
  readonly verified: boolean;
  /** Resolves with the committed entry; rejects with a `FillError` when the fill is dropped. */
  readonly done: Promise<BlobEntry>;
}

export interface BlobCacheOptions {
  /** E.g. `<data-dir>/cache`; holds blobs/, tmp/, index.sqlite and the lock file. */
  dir: string;
  /** Bytes (CACHE_MAX_SIZE). */
  maxSize: number;
  logger: FastifyBaseLogger;
  /** A fill whose source sends nothing (or whose disk accepts nothing) for this long is dropped. */
  stallTimeoutMs: number;
  /** How often batched access times are written to the index; default 5 s. */
  accessFlushMs?: number;
  /**
   * When a fill's temp file fails, its readers are served from memory: this bounds how far the slowest
   * may trail the upstream (the source waits for it, and after `stallTimeoutMs` it is cut off); default 16 MiB.
   */
  relayWindowBytes?: number;
  /** Counts evictions. */
  metrics?: Metrics;
  /** Where committed blobs live; default: files under `dir` (see src/config/shared-stores.ts). */
  blobStore?: BlobStoreConfig;
  /** Where the index and its records live; default: SQLite under `dir`. */
  cacheIndex?: CacheIndexConfig;
}
