import type { MANIFEST_MEDIA_TYPES } from './media-types.js';

type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];
const OCI_MANIFEST: ManifestMediaType = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX: ManifestMediaType = 'application/vnd.oci.image.index.v1+json';
const DOCKER_V1_SIGNED: ManifestMediaType = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
const DOCKER_V1: ManifestMediaType = 'application/vnd.docker.distribution.manifest.v1+json';

/**
 * `application/subtype` as RFC 6838 restricts names, without parameters: nothing else may reach a
 * header, and no manifest type is of another top-level type (a `text/html` field would make a
 * browser render a hostile registry's bytes under the registry's name).
 */
const MEDIA_TYPE = /^application\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/**
 * The Content-Type a manifest is served with, from its own bytes: its `mediaType` field, or, without
 * one, its type read from its shape as the distribution registry does (schema 1 by `schemaVersion`,
 * an OCI index by its `manifests`, else an OCI image manifest). The bytes are checked against their
 * digest before they are served, so this cannot be poisoned; an upstream's Content-Type header can
 * (a registry serving a digest as `text/html` must not decide what another registry's clients get).
 */
export function manifestMediaType(bytes: Buffer): string {
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'application/octet-stream';
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) return 'application/octet-stream';
  const { mediaType, schemaVersion, signatures, manifests } = manifest as Record<string, unknown>;
  if (typeof mediaType === 'string' && MEDIA_TYPE.test(mediaType)) return mediaType;
  if (schemaVersion === 1) return signatures === undefined ? DOCKER_V1 : DOCKER_V1_SIGNED;
  return Array.isArray(manifests) ? OCI_INDEX : OCI_MANIFEST;
}
