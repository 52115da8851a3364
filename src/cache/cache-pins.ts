import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { CacheScopeError, scopeFromBody, scopeName, type CacheScope } from './cache-scope.js';
import type { ImageCatalog } from './image-catalog.js';

/** The cache's records as pins use them (BlobCache): kept in the index, so shared and durable. */
export interface PinRecords {
  recordKeys(prefix: string): string[];
  getRecord<T>(key: string): T | undefined;
  setRecord<T>(key: string, value: T): Promise<void>;
  deleteRecord(key: string): Promise<void>;
}

export interface Pin {
  readonly scope: CacheScope;
  /** Epoch ms. */
  readonly at: number;
}

const PIN_PREFIX = 'pin:';
const pinKey = (scope: CacheScope): string => `${PIN_PREFIX}${scope.kind}:${scopeName(scope)}`;
const NONE: ReadonlySet<Digest> = new Set();

/**
 * Pins: scopes (a digest, a tag, a repository, a registry) whose content is never evicted, by the size
 * cap, `prune` or a fleet's eviction. A pin is a record, so it survives restarts and every replica of a
 * shared index honours it; it names a scope, not digests, so a pin of something not cached yet applies
 * as soon as it is (a pin before a prefetch), and a tag's pin follows the tag's current manifest.
 */
export class CachePins {
  readonly #records: PinRecords;
  readonly #catalog: ImageCatalog;
  readonly #logger: FastifyBaseLogger;

  constructor(records: PinRecords, catalog: ImageCatalog, logger: FastifyBaseLogger) {
    this.#records = records;
    this.#catalog = catalog;
    this.#logger = logger;
  }

  list(): Pin[] {
    return this.#records.recordKeys(PIN_PREFIX).flatMap((key) => {
      const pin = this.#read(key);
      return pin ? [pin] : [];
    });
  }

  /** True when the scope was not pinned before. */
  async pin(scope: CacheScope): Promise<boolean> {
    const key = pinKey(scope);
    if (this.#read(key)) return false;
    await this.#records.setRecord(key, { scope, at: Date.now() });
    return true;
  }

  /** True when the scope itself was pinned (a pin of a wider scope that covers it stays). */
  async unpin(scope: CacheScope): Promise<boolean> {
    const key = pinKey(scope);
    if (this.#records.getRecord(key) === undefined) return false;
    await this.#records.deleteRecord(key);
    return true;
  }

  /** Every digest some pin covers now; rejects when a manifest it needs cannot be read (eviction then keeps everything). */
  async pinnedDigests(): Promise<ReadonlySet<Digest>> {
    const pins = this.list();
    if (pins.length === 0) return NONE;
    const roots = new Set<Digest>();
    for (const pin of pins) for (const digest of this.#catalog.roots(pin.scope)) roots.add(digest);
    return this.#catalog.closure(roots, { strict: true });
  }

  /**
   * For eviction: the pinned digests, at once (no promise) when nothing is pinned, so that a cache
   * without pins evicts in the same turn as before.
   */
  kept(): ReadonlySet<Digest> | Promise<ReadonlySet<Digest>> {
    return this.#records.recordKeys(PIN_PREFIX).length === 0 ? NONE : this.pinnedDigests();
  }

  #read(key: string): Pin | null {
    const value = this.#records.getRecord<{ scope?: unknown; at?: unknown }>(key);
    if (value === undefined) return null;
    try {
      const scope = scopeFromBody(value.scope);
      return { scope, at: typeof value.at === 'number' ? value.at : 0 };
    } catch (error) {
      if (!(error instanceof CacheScopeError)) throw error;
      this.#logger.warn({ key, err: error.message }, 'cache: a pin record cannot be read; it is ignored');
      return null;
    }
  }
}
