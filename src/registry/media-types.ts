/** The largest manifest Layover reads, caches or serves (the distribution registry's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Manifest media types a registry may answer with. */
export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.docker.distribution.manifest.v1+json',
] as const;

/**
 * The Accept header reduced to what decides a registry's answer: the media
 * types, lower-cased, parameters dropped, sorted and deduplicated. Two clients
 * with the same key get the same manifest; a client accepting only
 * single-platform manifests never shares a key with one accepting indexes.
 */
export function acceptKey(accept: string | string[] | undefined): string {
  const values = Array.isArray(accept) ? accept.join(',') : (accept ?? '');
  const types = values
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .filter(Boolean);
  return [...new Set(types)].sort().join(',');
}
