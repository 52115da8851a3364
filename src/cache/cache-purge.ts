import type { Digest } from '../registry/digest.js';
import type { CachePins } from './cache-pins.js';
import { repositoryWithin, scopeName, type CacheScope } from './cache-scope.js';
import type { BlobEntry } from './blob-types.js';
import { repositoryRef, type ImageCatalog, type RepositoryRef, type TagPointer } from './image-catalog.js';

/** What a purge works on (CacheAdmin). */
export interface PurgeHost {
  readonly catalog: ImageCatalog;
  readonly pins: CachePins;
  stat(digest: Digest): BlobEntry | undefined;
  list(): BlobEntry[];
  recordKeys(prefix: string): string[];
  deleteRecord(key: string): Promise<void>;
  isFilling(digest: Digest): boolean;
  /** Removes these blobs (rows, objects, replicas told) unless a fill is writing one; the removed entries. */
  removeBlobs(digests: readonly Digest[]): Promise<BlobEntry[]>;
}

export interface KeptBlob {
  readonly digest: Digest;
  readonly size: number;
  /** pinned: a pin covers it; filling: a download is writing it; shared: an image outside the scope needs it (`force` removes it). */
  readonly reason: 'pinned' | 'filling' | 'shared';
  /** For `shared`: who else holds it (a manifest's digest, a tag, a repository). */
  readonly sharedWith?: readonly string[];
}

export interface PurgeResult {
  readonly scope: string;
  readonly removed: number;
  readonly freedBytes: number;
  readonly removedDigests: readonly Digest[];
  readonly kept: readonly KeptBlob[];
  /** Tag and access records deleted with the blobs. */
  readonly records: number;
}

const SHARED_WITH_SHOWN = 5;

/**
 * Removes what a scope covers: the cached blobs (manifests, configs, layers) and the tag and access
 * records that describe them. Pinned blobs and blobs a fill is writing stay; so does a blob an image
 * outside the scope needs (another repository's manifest, another tag, a repository it was also seen
 * in), unless `force`. What stayed is said, with why.
 */
export async function purgeScope(host: PurgeHost, scope: CacheScope, { force }: { force: boolean }): Promise<PurgeResult> {
  // Strict: a manifest that cannot be read now fails the purge rather than hide what it needs.
  const covered = await host.catalog.scopeDigests(scope, { strict: true });
  const pinned = await host.pins.pinnedDigests();
  const sharedWith = force ? new Map<Digest, string[]>() : await heldOutside(host, scope, covered);
  const kept: KeptBlob[] = [];
  const doomed: Digest[] = [];
  for (const digest of covered) {
    const entry = host.stat(digest);
    const filling = host.isFilling(digest);
    if (!entry && !filling) continue;
    const size = entry?.size ?? 0;
    if (pinned.has(digest)) kept.push({ digest, size, reason: 'pinned' });
    else if (filling) kept.push({ digest, size, reason: 'filling' });
    else if (sharedWith.has(digest)) kept.push({ digest, size, reason: 'shared', sharedWith: sharedWith.get(digest)!.slice(0, SHARED_WITH_SHOWN) });
    else doomed.push(digest);
  }
  const removed = await host.removeBlobs(doomed);
  // A fill that began between the decision and the removal kept its blob.
  const removedSet = new Set(removed.map((entry) => entry.digest));
  for (const digest of doomed) if (!removedSet.has(digest)) kept.push({ digest, size: 0, reason: 'filling' });
  const records = await deleteRecords(host, scope, removedSet, pinned);
  return {
    scope: scopeName(scope),
    removed: removed.length,
    freedBytes: removed.reduce((sum, entry) => sum + entry.size, 0),
    removedDigests: removed.map((entry) => entry.digest),
    kept,
    records,
  };
}

const tagInScope = (scope: CacheScope, tag: TagPointer): boolean =>
  repositoryWithin(scope, tag.registry, tag.repository) && (scope.kind !== 'tag' || tag.tag === scope.tag);

const repositoryName = (ref: RepositoryRef): string => `${ref.registry}/${ref.repository}`;

/** The covered digests something outside the scope holds, with who holds them. A digest named by the scope itself is never held. */
async function heldOutside(host: PurgeHost, scope: CacheScope, covered: ReadonlySet<Digest>): Promise<Map<Digest, string[]>> {
  const held = new Map<Digest, string[]>();
  const hold = (digest: Digest, by: string): void => {
    if (scope.kind === 'digest' && digest === scope.digest) return;
    if (covered.has(digest)) held.set(digest, [...(held.get(digest) ?? []), by]);
  };
  for (const entry of host.list()) {
    if (entry.kind !== 'manifest' || covered.has(entry.digest)) continue;
    const references = await host.catalog.references(entry.digest, { strict: true });
    for (const digest of [...(references?.manifests ?? []), ...(references?.blobs ?? [])]) hold(digest, `manifest ${entry.digest}`);
  }
  for (const tag of host.catalog.tags()) if (!tagInScope(scope, tag)) hold(tag.digest, `${repositoryName(tag)}:${tag.tag}`);
  // Repositories are what access records know: a tag's or a repository's purge keeps what another repository was seen with.
  if (scope.kind !== 'digest') {
    for (const digest of covered) {
      for (const ref of host.catalog.members(digest)) if (!repositoryWithin(scope, ref.registry, ref.repository)) hold(digest, repositoryName(ref));
    }
  }
  return held;
}

/**
 * Tag records inside the scope (a pinned tag's stays: its pin follows it) or pointing at a removed
 * manifest; the access records of removed digests; a repository's or a registry's reach records.
 */
async function deleteRecords(host: PurgeHost, scope: CacheScope, removed: ReadonlySet<Digest>, pinned: ReadonlySet<Digest>): Promise<number> {
  const keys = new Set<string>();
  for (const tag of host.catalog.tags()) {
    if (removed.has(tag.digest) || (tagInScope(scope, tag) && !pinned.has(tag.digest))) keys.add(tag.key);
  }
  for (const { key, digest } of host.catalog.memberRecords()) if (removed.has(digest)) keys.add(key);
  if (scope.kind === 'registry' || scope.kind === 'repository') {
    for (const reader of ['anonymous', 'layover']) {
      for (const key of host.recordKeys(`access:${reader}:`)) {
        const ref = repositoryRef(key.slice(`access:${reader}:`.length));
        if (ref && repositoryWithin(scope, ref.registry, ref.repository)) keys.add(key);
      }
    }
  }
  for (const key of keys) await host.deleteRecord(key);
  return keys.size;
}
