import { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, type Digest } from '../registry/digest.js';
import { type BlobStore, SHORT_BLOB } from './blob-store.js';
import type { BlobEntry } from './blob-types.js';
import { hashBytes, isCode } from './durable-files.js';
import type { LruIndex } from './lru-index.js';

/** What of a BlobCache `verify` reads and changes; the cache owns all of it. */
export interface VerifyHost {
  readonly logger: FastifyBaseLogger;
  readonly lru: LruIndex;
  readonly store: BlobStore;
  /** The store is a bucket other replicas share (the index has a change feed). */
  readonly shared: boolean;
  isClosed(): boolean;
  /** Removes the blob for every replica (row, object, announcement); resolves once the others are told. */
  remove(entry: BlobEntry): Promise<void>;
  /** Forgets the blob on this replica only. */
  forget(entry: BlobEntry): void;
}

/**
 * Re-hashes every committed blob and removes those whose bytes no longer match their digest. An object
 * missing from a shared bucket is only forgotten: another replica most likely evicted it, and its row may
 * by now be a new fill's, written just before that fill's commit.
 */
export async function verifyBlobs(host: VerifyHost): Promise<{ checked: number; removed: Digest[] }> {
  const started = performance.now();
  const removed: Digest[] = [];
  let checked = 0;
  for (const entry of host.lru.oldestFirst()) {
    if (host.isClosed()) break;
    const hashed = await hashStored(host.store, entry);
    checked += 1;
    if (hashed && hashed.hex === digestHex(entry.digest) && hashed.size === entry.size) continue;
    // Replaced by a new commit or evicted while it was being hashed: not ours to judge any more.
    if (host.lru.get(entry.digest) !== entry) continue;
    if (!hashed && host.shared) {
      host.forget(entry);
      continue;
    }
    host.logger.warn({ digest: entry.digest, reason: hashed ? 'corrupt' : 'file missing' }, 'cache verify: removing blob');
    // Awaited: a `layover cache verify` exits only once the fleet has been told.
    await host.remove(entry);
    removed.push(entry.digest);
  }
  host.logger.info({ checked, removed: removed.length, ms: Math.round(performance.now() - started) }, 'cache verified');
  return { checked, removed };
}

async function hashStored(store: BlobStore, entry: BlobEntry): Promise<{ hex: string; size: number } | null> {
  // A store read needs at least one byte to ask for; an empty blob only has to exist.
  if (entry.size === 0) return (await store.stat(entry.digest)) ? hashBytes(Readable.from([]), entry.digest) : null;
  try {
    return await hashBytes(store.read(entry.digest, { start: 0, end: entry.size - 1 }), entry.digest);
  } catch (error) {
    // Fewer bytes than its row says: as damaged as bytes that do not match (no hash of them matches).
    if (isCode(error, SHORT_BLOB)) return { hex: '', size: -1 };
    throw error;
  }
}
