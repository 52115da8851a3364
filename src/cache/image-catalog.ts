import type { Digest } from '../registry/digest.js';
import { normaliseRegistry, repositoryWithin, type CacheScope } from './cache-scope.js';
import type { BlobEntry } from './blob-types.js';
import { manifestReferences, type ManifestReferences } from './manifest-references.js';

/** What the catalog reads of a cache: its entries and records, and manifests without counting an access. */
export interface CatalogSource {
  stat(digest: Digest): BlobEntry | undefined;
  list(): BlobEntry[];
  recordKeys(prefix: string): string[];
  getRecord<T>(key: string): T | undefined;
  /** A cached manifest's bytes, its place in the LRU untouched; null when it is not cached; rejects when it cannot be read. */
  readManifest(digest: Digest): Promise<Buffer | null>;
}

/** A tag record (written by src/proxy/manifest-route.ts): a tag of a repository resolved to a manifest. */
export interface TagPointer {
  readonly key: string;
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  readonly digest: Digest;
}

/** A repository of a registry, as the cache keys them (see normaliseRegistry). */
export interface RepositoryRef {
  readonly registry: string;
  readonly repository: string;
}

const TAG_PREFIX = 'tag:';
const MEMBER_PREFIX = 'access:member:';
/** Digests named by the parsed manifests kept (they never change under their digest): thousands of images' worth, a few tens of MB at most. */
const MEMO_DIGESTS = 200_000;

/** `registry/repository` of a record (port 443 and the aliases of Docker Hub normalised away, other ports kept); null for anything else. */
export function repositoryRef(text: string): RepositoryRef | null {
  const slash = text.indexOf('/');
  const registry = slash > 0 ? normaliseRegistry(text.slice(0, slash)) : null;
  return registry ? { registry, repository: text.slice(slash + 1) } : null;
}

/** `tag:<registry>/<repository>:<tag>|<accept key>` split; null for a key of another shape. */
function parseTagKey(key: string, digest: unknown): TagPointer | null {
  if (typeof digest !== 'string') return null;
  const bar = key.indexOf('|');
  const reference = key.slice(TAG_PREFIX.length, bar < 0 ? undefined : bar);
  const colon = reference.lastIndexOf(':');
  const ref = colon > 0 ? repositoryRef(reference.slice(0, colon)) : null;
  return ref ? { key, ...ref, tag: reference.slice(colon + 1), digest: digest as Digest } : null;
}

/**
 * What the cache holds as images, read from what it already keeps: tag records, the manifests stored
 * as blobs (the layers, config and child manifests they name), the access records (the repositories
 * each digest was seen in) and each blob's source. Nothing of it is stored twice.
 */
export class ImageCatalog {
  readonly #source: CatalogSource;
  readonly #memo = new Map<Digest, ManifestReferences>();
  #memoDigests = 0;

  constructor(source: CatalogSource) {
    this.#source = source;
  }

  tags(): TagPointer[] {
    return this.#source.recordKeys(TAG_PREFIX).flatMap((key) => parseTagKey(key, this.#source.getRecord<{ digest?: unknown }>(key)?.digest) ?? []);
  }

  /** The repositories a digest was seen in upstream. */
  members(digest: Digest): RepositoryRef[] {
    const recorded = this.#source.getRecord<unknown>(`${MEMBER_PREFIX}${digest}`);
    return Array.isArray(recorded) ? recorded.flatMap((text) => (typeof text === 'string' ? (repositoryRef(text) ?? []) : [])) : [];
  }

  /** Digests with an access record: the record's key with the digest. */
  memberRecords(): Array<{ key: string; digest: Digest }> {
    return this.#source.recordKeys(MEMBER_PREFIX).map((key) => ({ key, digest: key.slice(MEMBER_PREFIX.length) as Digest }));
  }

  /**
   * A cached manifest's references; null when the digest is not a cached manifest. `strict`: a
   * manifest that cannot be read now rejects (what a pin or a purge protects depends on it); else
   * it counts as naming nothing (a listing shows what it can).
   */
  async references(digest: Digest, { strict = false }: { strict?: boolean } = {}): Promise<ManifestReferences | null> {
    const known = this.#memo.get(digest);
    if (known) return known;
    if (this.#source.stat(digest)?.kind !== 'manifest') return null;
    let body: Buffer | null;
    try {
      body = await this.#source.readManifest(digest);
    } catch (error) {
      if (strict) throw error;
      return null;
    }
    if (!body) return null;
    const references = manifestReferences(body) ?? { manifests: [], blobs: [] };
    this.#remember(digest, references);
    return references;
  }

  #remember(digest: Digest, references: ManifestReferences): void {
    const size = (r: ManifestReferences): number => r.manifests.length + r.blobs.length;
    while (this.#memo.size > 0 && this.#memoDigests + size(references) > MEMO_DIGESTS) {
      const [oldest, dropped] = this.#memo.entries().next().value!;
      this.#memo.delete(oldest);
      this.#memoDigests -= size(dropped);
    }
    this.#memo.set(digest, references);
    this.#memoDigests += size(references);
  }

  /** `roots` and everything the cached manifests among them reference, child manifests walked in turn; `strict` as for references. */
  async closure(roots: Iterable<Digest>, options: { strict?: boolean } = {}): Promise<Set<Digest>> {
    const found = new Set<Digest>();
    const queue = [...roots];
    while (queue.length > 0) {
      const digest = queue.pop()!;
      if (found.has(digest)) continue;
      found.add(digest);
      const references = await this.references(digest, options);
      if (references) for (const child of [...references.manifests, ...references.blobs]) queue.push(child);
    }
    return found;
  }

  /** The digests a scope starts from: its tags' manifests, and what was seen in or fetched for its repositories. */
  roots(scope: CacheScope): Set<Digest> {
    if (scope.kind === 'digest') return new Set([scope.digest]);
    const roots = new Set<Digest>();
    for (const tag of this.tags()) {
      if (repositoryWithin(scope, tag.registry, tag.repository) && (scope.kind !== 'tag' || tag.tag === scope.tag)) roots.add(tag.digest);
    }
    if (scope.kind === 'tag') return roots;
    const within = (ref: RepositoryRef | null): boolean => ref !== null && repositoryWithin(scope, ref.registry, ref.repository);
    for (const { digest } of this.memberRecords()) if (this.members(digest).some(within)) roots.add(digest);
    for (const entry of this.#source.list()) if (within(repositoryRef(entry.source))) roots.add(entry.digest);
    return roots;
  }

  /** Every digest a scope covers, cached or not yet. */
  scopeDigests(scope: CacheScope, options: { strict?: boolean } = {}): Promise<Set<Digest>> {
    return this.closure(this.roots(scope), options);
  }

  /** The blobs of a scope cached now (what a pin of it protects already). */
  async cachedSize(scope: CacheScope): Promise<{ cachedBlobs: number; cachedBytes: number }> {
    const cached = [...(await this.scopeDigests(scope))].flatMap((digest) => this.#source.stat(digest) ?? []);
    return { cachedBlobs: cached.length, cachedBytes: cached.reduce((sum, entry) => sum + entry.size, 0) };
  }
}
