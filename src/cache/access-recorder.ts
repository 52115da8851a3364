import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobEntry } from './blob-types.js';
import type { IndexStore } from './index-store.js';

/**
 * Batches index writes of access times. A cache hit must not wait for sqlite (0.4 ms per write even in
 * WAL mode), so a hit only marks its digest; the rows are written every few seconds and on close. A crash
 * loses at most one interval of LRU order, never a blob.
 */
export class AccessRecorder {
  private dirty = new Set<Digest>();
  private readonly timer: NodeJS.Timeout;
  private readonly lookup: (digest: Digest) => BlobEntry | undefined;
  private readonly index: IndexStore;
  private readonly logger: FastifyBaseLogger;
  private flushing: Promise<void> | undefined;

  constructor(
    intervalMs: number,
    lookup: (digest: Digest) => BlobEntry | undefined,
    index: IndexStore,
    logger: FastifyBaseLogger,
  ) {
    this.lookup = lookup;
    this.index = index;
    this.logger = logger;
    this.timer = setInterval(() => void this.flush(), intervalMs);
    // The timer alone must not keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  /** Also used to retry a row whose first write failed: the next flush writes the whole entry. */
  mark(digest: Digest): void {
    this.dirty.add(digest);
  }

  /** True while the digest's row waits to be written (a failed first write among them). */
  isMarked(digest: Digest): boolean {
    return this.dirty.has(digest);
  }

  get pending(): number {
    return this.dirty.size;
  }

  /** Writes the marked rows; a flush already under way is waited for, then another one runs. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.dirty.size === 0) return;
    this.flushing = this.writeDirty().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private async writeDirty(): Promise<void> {
    const digests = this.dirty;
    this.dirty = new Set();
    const entries: BlobEntry[] = [];
    // Entries evicted since they were marked are skipped: their rows are already being deleted.
    for (const digest of digests) {
      const entry = this.lookup(digest);
      if (entry) entries.push(entry);
    }
    const failed = await this.index.putEntries(entries);
    if (failed.length > 0) {
      this.logger.warn({ count: failed.length }, 'cache index: access times not written; retrying at the next flush');
      for (const digest of failed) this.dirty.add(digest);
    }
  }
}
