import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobStore } from './blob-store.js';

/**
 * Deletions handed to a file store at once. An eviction pass of 10,000 blobs queued 10,000 unlinks on
 * libuv's four threads at once: a blob hit's read, and the index's statement deleting the same rows,
 * waited behind all of them (the pass took 2.6 s). The disk takes them no faster in parallel. A bucket's
 * deletions are requests that wait on the network, not on those threads: they are not held back.
 */
const FILES_AT_ONCE = 3;

/**
 * Deletions of committed blobs, ordered against commits and readers of the same digest:
 * - an unlink under way is awaited by a commit of that digest, or it could delete the new file after
 *   its rename;
 * - a file removed while being read (found corrupt or missing) is deleted when its last reader closes,
 *   unless a new commit has put a good file under that name in the meantime.
 */
export class BlobRemovals {
  private readonly store: BlobStore;
  private readonly logger: FastifyBaseLogger;
  private readonly underway = new Map<Digest, Promise<void>>();
  private readonly deferred = new Set<Digest>();
  private readonly atOnce: number;
  /** Deletions waiting for one of the `atOnce` places, oldest first. */
  private readonly queued: Array<() => void> = [];
  private active = 0;

  constructor(store: BlobStore, logger: FastifyBaseLogger) {
    this.store = store;
    this.logger = logger;
    this.atOnce = store.kind === 'file' ? FILES_AT_ONCE : Infinity;
  }

  unlink(digest: Digest): Promise<void> {
    const removal: Promise<void> = (this.underway.get(digest) ?? Promise.resolve())
      .then(() => this.inTurn(() => this.store.remove(digest)))
      .catch((error: unknown) => {
        // Left behind without a row: the next open adopts it again (and eviction removes it once more).
        this.logger.error({ err: error, digest, store: this.store.kind }, 'cache: removing a blob failed');
      })
      .finally(() => {
        if (this.underway.get(digest) === removal) this.underway.delete(digest);
      });
    this.underway.set(digest, removal);
    return removal;
  }

  /** Deletes the file when `released()` reports the last reader gone. */
  defer(digest: Digest): void {
    this.deferred.add(digest);
  }

  /** Another replica committed the digest again: the object now in the store is not ours to delete. */
  cancelDeferred(digest: Digest): void {
    this.deferred.delete(digest);
  }

  released(digest: Digest): void {
    if (this.deferred.delete(digest)) void this.unlink(digest);
  }

  /**
   * Waits until no unlink of `digest` is under way and cancels a deferred one; from then until the caller's
   * rename, nothing else may schedule a removal of that name (the caller keeps it out of the index).
   */
  async clear(digest: Digest): Promise<void> {
    while (this.underway.has(digest)) await this.underway.get(digest);
    this.deferred.delete(digest);
  }

  /** True while this replica is deleting the digest's object, now or once its readers close. */
  removing(digest: Digest): boolean {
    return this.underway.has(digest) || this.deferred.has(digest);
  }

  async settled(): Promise<void> {
    await Promise.all([...this.underway.values()]);
  }

  private async inTurn(remove: () => Promise<void>): Promise<void> {
    if (this.active < this.atOnce) this.active += 1;
    // The place is handed over by the deletion that ends (below), so `active` counts it still.
    else await new Promise<void>((resolve) => this.queued.push(resolve));
    try {
      await remove();
    } finally {
      const next = this.queued.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}
