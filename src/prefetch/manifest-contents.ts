import { parseDigest, type Digest } from '../registry/digest.js';

/** A content descriptor from a manifest, checked: a valid digest and a size that is a whole number. */
export interface Descriptor {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  readonly platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

/** What a manifest names: other manifests (an index, a referrers list) or the blobs of one image or artifact. */
export type ManifestContents = { readonly kind: 'index'; readonly manifests: readonly Descriptor[] } | { readonly kind: 'image'; readonly blobs: readonly Descriptor[] };

export class ManifestContentError extends Error {
  override readonly name = 'ManifestContentError';
}

/** More than any real index or image has; a manifest naming more is hostile or broken. */
export const MAX_DESCRIPTORS = 1000;

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
/** Layers that live elsewhere (Windows base layers): registries do not serve them, so they are not fetched. */
const isForeign = (mediaType: string): boolean => mediaType.includes('foreign') || mediaType.includes('nondistributable');

/**
 * Reads what a manifest's bytes name. `contentType` is the route's Content-Type (the manifest's
 * own declared type, as Layover serves it); the body's `mediaType` decides when present. Anything
 * malformed is an error naming what is wrong: these bytes came from an upstream.
 */
export function manifestContents(body: Buffer, contentType: string, what: string): ManifestContents {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ManifestContentError(`${what} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ManifestContentError(`${what} is not a JSON object`);
  const manifest = parsed as Record<string, unknown>;
  const declared = typeof manifest.mediaType === 'string' ? manifest.mediaType : contentType.split(';')[0]!.trim();
  if (manifest.schemaVersion === 1) throw new ManifestContentError(`${what} is a schema 1 manifest, which Layover does not prefetch`);
  if (INDEX_TYPES.has(declared) || (Array.isArray(manifest.manifests) && manifest.config === undefined)) {
    return { kind: 'index', manifests: descriptors(manifest.manifests, `${what}: manifests`) };
  }
  const config = manifest.config === undefined ? [] : [descriptor(manifest.config, `${what}: config`)];
  // `blobs`: the short-lived OCI artifact manifest; `layers`: images and artifacts alike.
  const parts = [...descriptors(manifest.layers ?? [], `${what}: layers`), ...descriptors(manifest.blobs ?? [], `${what}: blobs`)];
  if (config.length === 0 && parts.length === 0) throw new ManifestContentError(`${what} names neither manifests nor blobs`);
  return { kind: 'image', blobs: [...config, ...parts.filter((part) => !isForeign(part.mediaType))] };
}

/** The `manifests` of a referrers answer (an OCI index), each a manifest to fetch. */
export function referrerDescriptors(body: Buffer, what: string): readonly Descriptor[] {
  const contents = manifestContents(body, 'application/vnd.oci.image.index.v1+json', what);
  if (contents.kind !== 'index') throw new ManifestContentError(`${what} is not an index of referrers`);
  return contents.manifests;
}

function descriptors(value: unknown, what: string): Descriptor[] {
  if (!Array.isArray(value)) throw new ManifestContentError(`${what} is not a list`);
  if (value.length > MAX_DESCRIPTORS) throw new ManifestContentError(`${what} lists ${value.length} entries, more than ${MAX_DESCRIPTORS}`);
  return value.map((entry, i) => descriptor(entry, `${what}[${i}]`));
}

function descriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new ManifestContentError(`${what} is not a descriptor`);
  const entry = value as Record<string, unknown>;
  const digest = typeof entry.digest === 'string' ? parseDigest(entry.digest) : null;
  if (!digest) throw new ManifestContentError(`${what} has no valid digest`);
  const size = entry.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ManifestContentError(`${what} has no valid size`);
  const mediaType = typeof entry.mediaType === 'string' ? entry.mediaType : '';
  const platform = typeof entry.platform === 'object' && entry.platform !== null ? (entry.platform as Descriptor['platform']) : undefined;
  return platform ? { digest, size, mediaType, platform } : { digest, size, mediaType };
}
