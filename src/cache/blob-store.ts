import type { Readable } from 'node:stream';
import type { Digest } from '../registry/digest.js';
import type { BlobMeta, ByteRange } from './blob-types.js';

/** A committed blob as its store sees it. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  /** Epoch ms: when it was committed (a file's mtime, an object's LastModified). */
  modified: number;
}

/** A committed blob found without an index row, with what its row needs. */
export interface AdoptedBlob extends StoredBlob {
  mediaType: string | null;
  kind: 'blob' | 'manifest';
}

/** An upload a fill began in the store and nobody completed or aborted (its replica was killed mid-fill). */
export interface UnfinishedUpload {
  digest: Digest;
  /** The store's name for the upload. */
  id: string;
  /** Epoch ms by the store's clock. */
  started: number;
}

/**
 * The bytes of one fill on their way into a store. A fill hands every chunk it hashes to `append`
 * (the same chunks it writes to its local spool file, in order) and calls `commit` only after the
 * digest matched; `abort` on anything else. Nothing is readable under the digest before `commit`
 * resolves, and never after `abort`.
 */
export interface BlobUpload {
  /**
   * Takes the next chunk; may wait (bounded memory) while earlier bytes are being sent, and returns
   * nothing when it took the chunk at once (a file store's spool file is the fill's own). A store
   * failure does not reject here: the fill goes on serving its readers, and `commit` rejects.
   */
  append(chunk: Buffer): Promise<void> | undefined;
  /** Makes the verified blob (`size` bytes, fsynced in the spool file) readable under its digest; consumes the spool file. */
  commit(size: number): Promise<void>;
  /** Drops whatever was sent; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

/** A read of a committed blob whose source has not answered yet; `error` with code ENOENT when it is gone. */
export interface PendingRead {
  /** True until the file is open or the object's answer has come ('ready' is emitted then). */
  readonly pending: boolean;
}

/**
 * Where committed, verified blobs live (distribution's storage driver, reduced to what a pull-through
 * cache needs): local files by default, or an S3-compatible bucket shared by replicas. Fills in
 * progress never live here: they are spooled under the data directory and handed over by `commit`.
 */
export interface BlobStore {
  /** 'file' or 's3', for log lines and errors. */
  readonly kind: string;
  /** Fails (BlobStoreUnavailableError) when the store cannot be used: a replica must not start without it. */
  check(): Promise<void>;
  /** A committed blob's bytes from `range.start` to `range.end` (inclusive), in chunks of at least 1 MiB. */
  read(digest: Digest, range: ByteRange): Readable & PendingRead;
  /** Begins the upload of one fill whose bytes are spooled in `spoolPath`. */
  beginUpload(digest: Digest, spoolPath: string, meta: BlobMeta): BlobUpload;
  /** Deletes a committed blob; one that is already gone is no error. */
  remove(digest: Digest): Promise<void>;
  /** The committed blob, or null when there is none. */
  stat(digest: Digest): Promise<StoredBlob | null>;
  /** The digest of every committed blob (paged where the store pages). */
  list(): AsyncIterable<Digest>;
  /**
   * After a crash: removes what is not a committed blob (partial or misnamed files) and returns how
   * many. A shared bucket holds nothing partial under a digest key, and its other keys are not ours.
   */
  sweepStrays(): Promise<number>;
  /**
   * Uploads begun and never completed nor aborted; none for a store whose fills leave nothing in it
   * before their commit (files). Rejects when the store cannot list them.
   */
  unfinishedUploads(): AsyncIterable<UnfinishedUpload>;
  /** Drops an unfinished upload's bytes; one that is gone already is no error. */
  abortUpload(upload: UnfinishedUpload): Promise<void>;
  /**
   * What to index for a committed blob that has no index row, or null when it must not be served
   * (the store then removes it if that is safe).
   */
  adopt(digest: Digest): Promise<AdoptedBlob | null>;
  /** A short-lived URL from which a client can GET the blob itself; null when the store has none. */
  presignedUrl(digest: Digest, expiresInSeconds: number): Promise<string | null>;
  close(): Promise<void>;
}

/** A read of a stored blob that holds fewer bytes than asked for fails with this code: damaged, as commits store whole blobs only. */
export const SHORT_BLOB = 'ESHORTBLOB';

/** The store cannot be reached or used (a missing bucket, refused credentials, no network). */
export class BlobStoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BlobStoreUnavailableError';
  }
}
