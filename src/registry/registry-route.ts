import { looksLikeDigest, parseDigest, type Digest } from './digest.js';
import { OciError } from './oci-errors.js';
import { isTag, parseRepositoryName, type RepositoryName } from './repository-name.js';

/** What a request path means in the OCI distribution API. */
export type RegistryRoute =
  | { kind: 'ping' }
  | { kind: 'catalog' }
  | { kind: 'blob'; name: RepositoryName; digest: Digest }
  | { kind: 'upload'; name: RepositoryName }
  | { kind: 'manifest'; name: RepositoryName; reference: { tag: string } | { digest: Digest } }
  | { kind: 'tags'; name: RepositoryName }
  | { kind: 'referrers'; name: RepositoryName; digest: Digest };

/**
 * Parses `/v2/...` (without the query string). Returns null for paths outside
 * the registry API; throws OciError NAME_INVALID / DIGEST_INVALID / MANIFEST_UNKNOWN
 * for registry paths that are malformed, so they never reach an upstream.
 */
export function parseRegistryPath(path: string): RegistryRoute | null {
  if (path === '/v2' || path === '/v2/') return { kind: 'ping' };
  if (!path.startsWith('/v2/')) return null;
  // Registry paths never need escapes or dot segments; refusing them keeps
  // `..` and `%2e%2e` from meaning anything to us or to an upstream.
  if (path.includes('%') || path.includes('//') || /(^|\/)\.\.?(\/|$)/.test(path)) {
    throw new OciError('NAME_INVALID', 'invalid characters or segments in the repository path');
  }
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  const match =
    /^\/v2\/(.+)\/(blobs)\/uploads(?:\/.*)?$/.exec(path) ??
    /^\/v2\/(.+)\/(blobs|manifests|referrers)\/([^/]+)$/.exec(path) ??
    /^\/v2\/(.+)\/(tags)\/list$/.exec(path);
  if (!match) return null;
  const name = parseRepositoryName(match[1]!);
  if (!name) throw new OciError('NAME_INVALID', 'invalid repository name', { name: match[1]!.slice(0, 300) });
  const [, , section, last] = match;
  if (last === undefined) return section === 'tags' ? { kind: 'tags', name } : { kind: 'upload', name };
  if (section === 'manifests') {
    if (isTag(last)) return { kind: 'manifest', name, reference: { tag: last } };
    const digest = parseDigest(last);
    if (digest) return { kind: 'manifest', name, reference: { digest } };
    if (looksLikeDigest(last)) throw digestInvalid(last);
    // No manifest can have such a name: 404 like the distribution registry and the conformance
    // suite, not 400 (MANIFEST_INVALID is about a manifest's content, on push).
    throw new OciError('MANIFEST_UNKNOWN', 'invalid manifest reference: neither a tag nor a digest', { reference: last.slice(0, 300) });
  }
  const digest = parseDigest(last);
  if (!digest) throw digestInvalid(last);
  return section === 'blobs' ? { kind: 'blob', name, digest } : { kind: 'referrers', name, digest };
}

function digestInvalid(text: string): OciError {
  return new OciError('DIGEST_INVALID', 'invalid or unsupported digest (sha256 or sha512 expected)', { digest: text.slice(0, 300) });
}
