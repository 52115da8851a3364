import { parseDigest, type Digest } from '../registry/digest.js';

/** What a manifest holds by digest: an index its child manifests; an image its config and layers. */
export interface ManifestReferences {
  readonly manifests: readonly Digest[];
  readonly blobs: readonly Digest[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Descriptors read of one list: real images have a few hundred layers at most; a hostile manifest is not walked further. */
const MAX_DESCRIPTORS = 1_000;

/** The valid digests among `items[].field`; anything else in a hostile manifest is ignored. */
function digestsOf(items: unknown, field: string): Digest[] {
  if (!Array.isArray(items)) return [];
  return items.slice(0, MAX_DESCRIPTORS).flatMap((item) => {
    const digest = isObject(item) && typeof item[field] === 'string' ? parseDigest(item[field]) : null;
    return digest ? [digest] : [];
  });
}

/**
 * The references of a manifest's bytes (OCI image and index, Docker schema 2 and its list, schema 1's
 * fsLayers, OCI artifact `blobs`); null when the bytes are no JSON object. A `subject` is not counted:
 * a referrer points at another image, it does not hold it.
 */
export function manifestReferences(body: Buffer): ManifestReferences | null {
  let manifest: unknown;
  try {
    manifest = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (!isObject(manifest)) return null;
  const config = isObject(manifest.config) && typeof manifest.config.digest === 'string' ? parseDigest(manifest.config.digest) : null;
  const blobs = [...(config ? [config] : []), ...digestsOf(manifest.layers, 'digest'), ...digestsOf(manifest.blobs, 'digest'), ...digestsOf(manifest.fsLayers, 'blobSum')];
  return { manifests: [...new Set(digestsOf(manifest.manifests, 'digest'))], blobs: [...new Set(blobs)] };
}
