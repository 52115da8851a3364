import { parseDigest, type Digest } from '../registry/digest.js';
import { parseHostname } from '../registry/hostname.js';
import { isTag, parseRepositoryName, type RepositoryName } from '../registry/repository-name.js';

/** An image reference, normalised as docker normalises it (`alpine` is docker.io/library/alpine:latest). */
export interface ImageReference {
  /** The registry as people write it: `docker.io`, `ghcr.io`, `registry.example:5000`. */
  readonly registry: string;
  /** The Host a client sends for it, which Layover's routes and tag records key on (Docker Hub's is registry-1.docker.io). */
  readonly host: string;
  readonly repository: RepositoryName;
  readonly reference: { readonly tag: string } | { readonly digest: Digest };
  /** The normalised reference, for progress lines and logs. */
  readonly canonical: string;
}

export class InvalidReferenceError extends Error {
  override readonly name = 'InvalidReferenceError';
}

const DOCKER_HUB = 'docker.io';
/** Docker clients talk to this name for every docker.io image (src/proxy/upstream-target.ts maps the others to it). */
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
/** Longer than any name a registry accepts (255) plus a tag (128) or digest. */
const MAX_REFERENCE_LENGTH = 512;

/**
 * Parses `[registry/]repository[:tag][@digest]` with docker's rules: the first component names a
 * registry only when it has a dot or a port or is `localhost`; Docker Hub's one-component names live
 * under `library/`; no tag means `latest`; a digest wins over a tag.
 */
export function parseImageReference(text: string): ImageReference {
  const fail = (why: string): never => {
    throw new InvalidReferenceError(`${JSON.stringify(text.slice(0, 100))} is not an image reference: ${why}`);
  };
  if (text.length === 0 || text.length > MAX_REFERENCE_LENGTH) fail(`expected 1 to ${MAX_REFERENCE_LENGTH} characters, such as docker.io/library/alpine:3.20`);
  const at = text.indexOf('@');
  const named = at < 0 ? text : text.slice(0, at);
  const digestText = at < 0 ? null : text.slice(at + 1);
  const digest = digestText === null ? null : parseDigest(digestText);
  if (digestText !== null && digest === null) fail('the digest is not sha256:<64 hex> or sha512:<128 hex>');

  const slash = named.indexOf('/');
  const first = slash < 0 ? '' : named.slice(0, slash);
  const hasRegistry = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registryText = hasRegistry ? first.toLowerCase() : DOCKER_HUB;
  const remainder = hasRegistry ? named.slice(slash + 1) : named;
  const colon = remainder.lastIndexOf(':');
  const path = colon < 0 ? remainder : remainder.slice(0, colon);
  const tag = colon < 0 ? null : remainder.slice(colon + 1);
  if (tag !== null && !isTag(tag)) fail('the tag is not 1 to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)');

  const registry = registryName(registryText) ?? fail(`${registryText} is not a registry name (host or host:port)`);
  const dockerHub = DOCKER_HUB_ALIASES.has(registry);
  if (path !== path.toLowerCase()) fail('repository names are lower case');
  const repository = parseRepositoryName(dockerHub && !path.includes('/') ? `library/${path}` : path) ?? fail('the repository name is not valid (lower-case components such as library/alpine)');
  const reference = digest ? { digest } : { tag: tag ?? 'latest' };
  const shownRegistry = dockerHub ? DOCKER_HUB : registry;
  const canonical = `${shownRegistry}/${repository}${'digest' in reference ? `@${reference.digest}` : `:${reference.tag}`}`;
  return { registry: shownRegistry, host: dockerHub ? DOCKER_HUB_API_HOST : registry, repository, reference, canonical };
}

/** `host` or `host:port`, lower case, without :443 (as Layover's routes name a registry). */
function registryName(text: string): string | null {
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(text);
  if (!match) return null;
  const host = parseHostname(match[1]!);
  const port = match[2] === undefined ? 443 : Number(match[2]);
  if (!host || port < 1 || port > 65535) return null;
  return port === 443 ? host : `${host}:${port}`;
}

/** A platform as `os/architecture[/variant]`, as docker's --platform takes it. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** Parses `linux/arm64` or `linux/arm/v7`; throws InvalidReferenceError with the expected form. */
export function parsePlatform(text: string): Platform {
  const parts = text.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((part) => /^[a-z0-9._-]{1,32}$/.test(part))) {
    throw new InvalidReferenceError(`${JSON.stringify(text.slice(0, 100))} is not a platform: expected OS/ARCH[/VARIANT] such as linux/arm64`);
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export const formatPlatform = (platform: Platform): string => [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');

/** arm64 images say v8 or nothing: docker treats both the same. */
const normalVariant = (platform: { architecture: string; variant?: string | undefined }): string | undefined =>
  platform.architecture === 'arm64' && (platform.variant === undefined || platform.variant === 'v8') ? undefined : platform.variant;

/** True when an index entry's platform is the one asked for (a variant asked for must match too). */
export function platformMatches(wanted: Platform, found: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined): boolean {
  if (!found || found.os !== wanted.os || found.architecture !== wanted.architecture) return false;
  if (wanted.variant === undefined) return true;
  return normalVariant(wanted) === normalVariant({ architecture: wanted.architecture, ...(typeof found.variant === 'string' ? { variant: found.variant } : {}) });
}
