import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../registry/digest.js';
import type { BlobEntry } from './blob-types.js';
import { CacheScopeError, repositoryWithin, scopeFromBody, scopeName, type CacheScope } from './cache-scope.js';
import { repositoryRef, type ImageCatalog, type RepositoryRef } from './image-catalog.js';

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
/** The records a pinned set is worked out from besides pins (image-catalog.ts writes nothing; these are the proxy's). */
const TAG_PREFIX = 'tag:';
const MEMBER_PREFIX = 'access:member:';
const pinKey = (scope: CacheScope): string => `${PIN_PREFIX}${scope.kind}:${scopeName(scope)}`;
const NONE: ReadonlySet<Digest> = new Set();
/** Rounds of working the set out again when it changes meanwhile; then the last round's set is used once, uncached. */
const SETTLE_ROUNDS = 3;
const taggedDigest = (value: unknown): unknown => (typeof value === 'object' && value !== null ? (value as { digest?: unknown }).digest : undefined);

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
  /** The pin records' keys, kept in step by recordChanged: eviction asks without a scan of every record. */
  readonly #pinKeys = new Set<string>();
  #pins: Pin[] | null = null;
  /**
   * The pinned digests as last worked out (null: to be worked out again). Recomputing them reads every
   * tag, access record and entry: per eviction pass on a cache of 100,000 blobs that was the pass's
   * main cost. Changes that can only add digests add them (`#pending`); the others invalidate.
   */
  #pinned: Set<Digest> | null = null;
  /** Digests to add to `#pinned` with everything they reference. */
  #pending = new Set<Digest>();
  /** Counts invalidations: a set worked out across one is not kept. */
  #generation = 0;
  #settling: Promise<ReadonlySet<Digest>> | undefined;
  /** A full computation is under way (`#pinned` is null meanwhile). */
  #computing = false;

  constructor(records: PinRecords, catalog: ImageCatalog, logger: FastifyBaseLogger) {
    this.#records = records;
    this.#catalog = catalog;
    this.#logger = logger;
    for (const key of records.recordKeys(PIN_PREFIX)) this.#pinKeys.add(key);
  }

  list(): Pin[] {
    this.#pins ??= [...this.#pinKeys].flatMap((key) => {
      const pin = this.#read(key);
      return pin ? [pin] : [];
    });
    return [...this.#pins];
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
  pinnedDigests(): Promise<ReadonlySet<Digest>> {
    if (this.#pinKeys.size === 0) return Promise.resolve(NONE);
    if (this.#pinned && this.#pending.size === 0) return Promise.resolve(this.#pinned);
    this.#settling ??= this.#settle().finally(() => {
      this.#settling = undefined;
    });
    return this.#settling;
  }

  /**
   * For eviction: the pinned digests, at once (no promise) when nothing is pinned or nothing changed
   * since they were last worked out, so that such a pass evicts in the same turn.
   */
  kept(): ReadonlySet<Digest> | Promise<ReadonlySet<Digest>> {
    if (this.#pinKeys.size === 0) return NONE;
    return this.#pinned && this.#pending.size === 0 ? this.#pinned : this.pinnedDigests();
  }

  /**
   * A record was set or deleted (`after` undefined), by this replica or another: pins invalidate the
   * set, a tag that names another manifest too (its old manifest is free again); an access record that
   * puts a digest in a pinned repository adds it.
   */
  recordChanged(key: string, before: unknown, after: unknown): void {
    if (key.startsWith(PIN_PREFIX)) {
      if (after === undefined) this.#pinKeys.delete(key);
      else this.#pinKeys.add(key);
      this.#pins = null;
      this.#invalidate();
      return;
    }
    if (!this.#watching()) return;
    if (key.startsWith(TAG_PREFIX)) {
      if (taggedDigest(before) !== taggedDigest(after) && this.list().some((pin) => pin.scope.kind !== 'digest')) this.#invalidate();
    } else if (key.startsWith(MEMBER_PREFIX) && after !== undefined) {
      const digest = key.slice(MEMBER_PREFIX.length) as Digest;
      if (this.#repositoryPinned(this.#catalog.members(digest))) this.#add(digest);
    }
  }

  /**
   * A blob became a hit (a commit, an adoption, another replica's commit): pinned when its repository
   * is, and a pinned manifest's references are pinned once it is cached.
   */
  entryInserted(entry: BlobEntry): void {
    if (!this.#watching()) return;
    const source = repositoryRef(entry.source);
    // While the set is being worked out, any manifest may turn out to be in it.
    const pinnedManifest = entry.kind === 'manifest' && (this.#pinned === null || this.#pinned.has(entry.digest));
    if (pinnedManifest || (source && this.#repositoryPinned([source]))) this.#add(entry.digest);
  }

  /** Changes matter while there is a set to keep up to date, or one being worked out. */
  #watching(): boolean {
    return this.#pinKeys.size > 0 && (this.#pinned !== null || this.#computing);
  }

  /** A digest to add with its references; during a full computation, whose roots were read before it, that computation is repeated. */
  #add(digest: Digest): void {
    if (this.#pinned === null) this.#generation += 1;
    else this.#pending.add(digest);
  }

  #repositoryPinned(refs: readonly RepositoryRef[]): boolean {
    return this.list().some((pin) => refs.some((ref) => repositoryWithin(pin.scope, ref.registry, ref.repository)));
  }

  #invalidate(): void {
    this.#generation += 1;
    this.#pinned = null;
  }

  async #settle(): Promise<ReadonlySet<Digest>> {
    for (let round = 1; ; round += 1) {
      const generation = this.#generation;
      const last = round === SETTLE_ROUNDS;
      let pinned = this.#pinned;
      if (pinned === null) {
        const roots = new Set<Digest>();
        for (const pin of this.list()) for (const digest of this.#catalog.roots(pin.scope)) roots.add(digest);
        // The roots just read cover what was pending.
        this.#pending.clear();
        this.#computing = true;
        try {
          pinned = await this.#catalog.closure(roots, { strict: true });
        } finally {
          this.#computing = false;
        }
        if (generation !== this.#generation && !last) continue;
      }
      if (this.#pending.size > 0) {
        const roots = this.#pending;
        this.#pending = new Set();
        let added: Set<Digest>;
        try {
          added = await this.#catalog.closure(roots, { strict: true });
        } catch (error) {
          for (const digest of roots) this.#pending.add(digest);
          throw error;
        }
        for (const digest of added) pinned.add(digest);
      }
      if (generation === this.#generation) {
        this.#pinned = pinned;
        if (this.#pending.size === 0 || last) return pinned;
      } else if (last) {
        return pinned;
      }
    }
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
