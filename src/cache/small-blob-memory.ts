import type { Digest } from '../registry/digest.js';

/**
 * Bytes of small committed blobs (manifests, image configs, small layers) held in memory, least recently
 * used first out, bounded by their total size. A hit otherwise opens, reads and closes its file on every
 * GET, three trips to the thread pool that cost more than the rest of the request. The bytes are
 * immutable by digest and were read from the committed (verified) file; the caller asks the cache index
 * first on every read, so a blob evicted or purged is never answered from here even while its bytes
 * linger until pushed out.
 */
export class SmallBlobMemory {
  private readonly entries = new Map<Digest, Buffer>();
  private bytes = 0;
  private readonly maxBytes: number;
  /** A bigger blob is never kept: one large blob must not push out hundreds of small ones. */
  private readonly maxEntryBytes: number;

  constructor(maxBytes: number, maxEntryBytes: number) {
    this.maxBytes = maxBytes;
    this.maxEntryBytes = maxEntryBytes;
  }

  get size(): number {
    return this.bytes;
  }

  get(digest: Digest): Buffer | undefined {
    const bytes = this.entries.get(digest);
    if (bytes === undefined) return undefined;
    // Re-inserting moves it to the end of the Map's order: the first entries are the least recently used.
    this.entries.delete(digest);
    this.entries.set(digest, bytes);
    return bytes;
  }

  set(digest: Digest, bytes: Buffer): void {
    if (bytes.length > this.maxEntryBytes || this.entries.has(digest)) return;
    this.entries.set(digest, bytes);
    this.bytes += bytes.length;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= old.length;
    }
  }
}
