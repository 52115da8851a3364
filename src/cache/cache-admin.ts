import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobRemovals } from './blob-removals.js';
import type { BlobEntry } from './blob-types.js';
import type { CachePins } from './cache-pins.js';
import { purgeScope, type PurgeResult } from './cache-purge.js';
import type { CacheRecords } from './cache-records.js';
import type { CacheScope } from './cache-scope.js';
import type { CommittedBlobs } from './committed-blobs.js';
import type { ImageCatalog } from './image-catalog.js';
import type { LruIndex } from './lru-index.js';

/** What of a BlobCache the admin operations use; the cache owns all of it. */
export interface AdminHost {
  readonly logger: FastifyBaseLogger;
  readonly lru: LruIndex;
  readonly removals: BlobRemovals;
  readonly committed: CommittedBlobs;
  readonly records: CacheRecords;
  readonly catalog: ImageCatalog;
  readonly pins: CachePins;
  /** A fill of this digest runs here: its blob is not removed. */
  isFilling(digest: Digest): boolean;
}

/** The admin API's operations on the cache as a whole: purges of a scope, and what the pins hold. */
export class CacheAdmin {
  private readonly host: AdminHost;

  constructor(host: AdminHost) {
    this.host = host;
  }

  /** How many pins there are, and the cached blobs they cover now. */
  async pinStats(): Promise<{ pins: number; pinnedEntries: number; pinnedBytes: number }> {
    const { lru, pins } = this.host;
    const pinned = [...(await pins.pinnedDigests())].flatMap((digest) => lru.get(digest) ?? []);
    return { pins: pins.list().length, pinnedEntries: pinned.length, pinnedBytes: pinned.reduce((sum, entry) => sum + entry.size, 0) };
  }

  /** The blobs and records a scope covers, except pinned ones, ones being filled and (unless `force`) ones an image outside it needs. */
  async purge(scope: CacheScope, options: { force: boolean }): Promise<PurgeResult> {
    const { lru, records } = this.host;
    const result = await purgeScope(
      {
        catalog: this.host.catalog,
        pins: this.host.pins,
        stat: (digest) => lru.get(digest),
        list: () => lru.oldestFirst(),
        recordKeys: (prefix) => records.keys(prefix),
        deleteRecord: (key) => records.delete(key),
        isFilling: (digest) => this.host.isFilling(digest),
        removeBlobs: (digests) => this.removeBlobs(digests),
      },
      scope,
      options,
    );
    if (result.removed > 0) this.host.logger.info({ scope: result.scope, removed: result.removed, bytes: result.freedBytes, kept: result.kept.length }, 'cache purged');
    return result;
  }

  /** Removes blobs as eviction does (rows, objects once unread, replicas told), except one a fill is writing. */
  private async removeBlobs(digests: readonly Digest[]): Promise<BlobEntry[]> {
    const { lru } = this.host;
    const victims = digests.flatMap((digest) => (this.host.isFilling(digest) ? [] : (lru.delete(digest) ?? [])));
    if (victims.length === 0) return [];
    await this.host.committed.drop(victims);
    await this.host.removals.settled();
    return victims.map((entry) => ({ ...entry }));
  }
}
