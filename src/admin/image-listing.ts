import type { BlobCache, BlobEntry } from '../cache/blob-cache.js';
import { repositoryRef, type RepositoryRef } from '../cache/image-catalog.js';
import { registryWithin } from '../cache/cache-scope.js';
import type { Digest } from '../registry/digest.js';

/** One cached image: a tag's manifest, or a manifest cached without a tag (pulled by digest). */
export interface ImageRow {
  readonly registry: string;
  readonly repository: string;
  /** null: cached by digest only. */
  readonly tag: string | null;
  readonly digest: Digest;
  readonly mediaType: string | null;
  /** Bytes cached of the image: its manifest(s), config(s) and layers, each counted once. */
  readonly bytes: number;
  /** Blobs of it cached, and those it references that are not (another platform never pulled, say). */
  readonly blobs: number;
  readonly missing: number;
  /** The latest access to any of its blobs (ISO 8601). */
  readonly lastUsed: string;
  /** A pin covers its manifest. */
  readonly pinned: boolean;
}

export interface ImageFilter {
  /** As the cache keys it (normaliseRegistry); a host without a port lists every port of it. */
  readonly registry?: string;
  readonly repository?: string;
}

/**
 * The cached images by registry, repository and tag, with sizes and last use, worked out from what the
 * cache keeps (image-catalog.ts). A manifest that is another cached manifest's child (a platform of an
 * index) is part of that image, not a row of its own.
 */
export async function listImages(cache: BlobCache, filter: ImageFilter): Promise<ImageRow[]> {
  const { catalog } = cache;
  const pinned = await cache.pins.pinnedDigests();
  const manifests = cache.list().filter((entry) => entry.kind === 'manifest');
  const children = new Set<Digest>();
  for (const entry of manifests) for (const child of (await catalog.references(entry.digest))?.manifests ?? []) children.add(child);

  const heads = new Map<string, { ref: RepositoryRef; tag: string | null; entry: BlobEntry }>();
  const tagged = new Set<Digest>();
  for (const tag of catalog.tags()) {
    const entry = cache.stat(tag.digest);
    if (entry?.kind !== 'manifest') continue;
    tagged.add(tag.digest);
    heads.set(`${tag.registry}/${tag.repository}:${tag.tag}@${tag.digest}`, { ref: tag, tag: tag.tag, entry });
  }
  for (const entry of manifests) {
    if (tagged.has(entry.digest) || children.has(entry.digest)) continue;
    const ref = catalog.members(entry.digest)[0] ?? repositoryRef(entry.source);
    if (ref) heads.set(`${ref.registry}/${ref.repository}@${entry.digest}`, { ref, tag: null, entry });
  }

  const rows: ImageRow[] = [];
  for (const { ref, tag, entry } of heads.values()) {
    if (filter.registry !== undefined && !registryWithin(filter.registry, ref.registry)) continue;
    if (filter.repository !== undefined && ref.repository !== filter.repository) continue;
    const cached = [...(await catalog.closure([entry.digest]))].map((digest) => ({ digest, entry: cache.stat(digest) }));
    const present = cached.flatMap((item) => (item.entry ? [item.entry] : []));
    // Evicted while the listing was worked out: no longer an image of the cache.
    if (present.length === 0) continue;
    rows.push({
      registry: ref.registry,
      repository: ref.repository,
      tag,
      digest: entry.digest,
      mediaType: entry.mediaType,
      bytes: present.reduce((sum, blob) => sum + blob.size, 0),
      blobs: present.length,
      missing: cached.length - present.length,
      lastUsed: new Date(present.reduce((latest, blob) => Math.max(latest, blob.lastAccess), 0)).toISOString(),
      pinned: pinned.has(entry.digest),
    });
  }
  const order = (row: ImageRow): string => `${row.registry}\u0000${row.repository}\u0000${row.tag ?? '\uffff'}\u0000${row.digest}`;
  return rows.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}
