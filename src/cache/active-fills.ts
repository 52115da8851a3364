import type { Readable } from 'node:stream';
import type { Digest } from '../registry/digest.js';
import { BlobFill, type FillHost } from './blob-fill.js';
import type { BlobUpload } from './blob-store.js';
import type { BlobEntry, BlobMeta, Fill, FillOptions } from './blob-types.js';
import type { CacheLayout } from './cache-layout.js';
import { FillWaiters } from './fill-waiters.js';

/** What fills need of their BlobCache beyond what a BlobFill's host gives. */
export interface ActiveFillsHost extends Omit<FillHost, 'commit' | 'abandon'> {
  readonly layout: CacheLayout;
  /** Commits a verified upload as `entry` (CommittedBlobs.install); `beforeVisible` runs just before it is a hit. */
  install(entry: BlobEntry, upload: BlobUpload, beforeVisible: () => void): Promise<void>;
}

/**
 * The fills in progress, one per digest: a second miss for a digest follows the fill the first one
 * started, and a fill stays active until its blob is committed (or the fill dropped).
 */
export class ActiveFills {
  private readonly fills = new Map<Digest, BlobFill>();
  private readonly waiters = new FillWaiters();
  private readonly host: ActiveFillsHost;
  private readonly fillHost: FillHost;

  constructor(host: ActiveFillsHost) {
    this.host = host;
    const { layout, install, ...shared } = host;
    this.fillHost = {
      ...shared,
      commit: (fill, upload, size) => this.commit(fill, upload, size),
      abandon: (fill) => this.forget(fill),
    };
  }

  /** Fills in progress. */
  get size(): number {
    return this.fills.size;
  }

  /** Clients following fills in progress. */
  get waiterCount(): number {
    return this.waiters.count;
  }

  has(digest: Digest): boolean {
    return this.fills.has(digest);
  }

  active(digest: Digest): Fill | undefined {
    return this.waiters.counted(this.fills.get(digest));
  }

  /** The fill of `digest` in progress, or a new one from `source`. */
  start(digest: Digest, source: Readable, meta: BlobMeta, options: FillOptions = {}): Fill {
    const active = this.fills.get(digest);
    if (active) {
      // Nobody reads this second source: left alone, an upstream body would hold its connection until its timeout.
      source.destroy();
      return this.waiters.counted(active);
    }
    const fill = new BlobFill(digest, source, meta, this.host.layout.tmpPath(digest), this.fillHost, options);
    this.fills.set(digest, fill);
    return this.waiters.counted(fill);
  }

  /** Aborts every fill in progress and waits for each to end. */
  async abortAll(): Promise<void> {
    const fills = [...this.fills.values()];
    for (const fill of fills) fill.abort();
    await Promise.allSettled(fills.map((fill) => fill.done));
  }

  private async commit(fill: BlobFill, upload: BlobUpload, size: number): Promise<BlobEntry> {
    const now = Date.now();
    const { mediaType, kind, source } = fill.meta;
    const entry: BlobEntry = { digest: fill.digest, size, mediaType, kind, created: now, lastAccess: now, source };
    await this.host.install(entry, upload, () => this.forget(fill));
    return { ...entry };
  }

  private forget(fill: BlobFill): void {
    if (this.fills.get(fill.digest) === fill) this.fills.delete(fill.digest);
  }
}
