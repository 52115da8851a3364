import { looksLikeDigest, parseDigest, type Digest } from '../registry/digest.js';
import { parseHostname } from '../registry/hostname.js';
import { isTag, parseRepositoryName } from '../registry/repository-name.js';

/**
 * What a purge or a pin acts on: one digest (a manifest with what it references), one tag of a
 * repository, a repository, or every repository of a registry. Registry names are those the cache
 * keys use: `host[:port]` (a port other than 443 names a registry of its own), Docker Hub under its
 * registry API's name. A scope naming a host without a port covers every port of it.
 */
export type CacheScope =
  | { readonly kind: 'digest'; readonly digest: Digest }
  | { readonly kind: 'registry'; readonly registry: string }
  | { readonly kind: 'repository'; readonly registry: string; readonly repository: string }
  | { readonly kind: 'tag'; readonly registry: string; readonly repository: string; readonly tag: string };

/** A scope that cannot be understood; its message says what was expected. */
export class CacheScopeError extends Error {
  /** What was wrong: a digest, or a name (registry, repository, tag, or the scope's shape). */
  readonly invalid: 'digest' | 'name';

  constructor(message: string, invalid: 'digest' | 'name' = 'name') {
    super(message);
    this.name = 'CacheScopeError';
    this.invalid = invalid;
  }
}

export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
/** The names clients use for Docker Hub; the cache knows it as registry-1.docker.io (src/proxy/upstream-target.ts). */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', DOCKER_HUB_REGISTRY]);

/** `Host[:port]` as the cache keys it (lower case, port 443 left out, Docker Hub's aliases as one); null when it is no host name. */
export function normaliseRegistry(text: string): string | null {
  const match = /^([^:/[\]]+)(?::(\d{1,5}))?$/.exec(text);
  const host = match ? parseHostname(match[1]!) : null;
  if (!host) return null;
  const port = match![2] === undefined ? 443 : Number(match![2]);
  if (port < 1 || port > 65535) return null;
  const name = DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB_REGISTRY : host;
  return port === 443 ? name : `${name}:${port}`;
}

/** True when a scope's registry covers `registry` (both normalised): the same, or its host at any port when the scope names none. */
export function registryWithin(scopeRegistry: string, registry: string): boolean {
  if (scopeRegistry === registry) return true;
  return !scopeRegistry.includes(':') && registry.startsWith(scopeRegistry) && registry[scopeRegistry.length] === ':';
}

/** Docker Hub's official images live under `library/`, which clients add themselves; so does the scope. */
function normaliseRepository(registry: string, repository: string): string {
  return registry === DOCKER_HUB_REGISTRY && !repository.includes('/') ? `library/${repository}` : repository;
}

const EXAMPLE = 'sha256:<64 hex> or registry[/repository[:tag]], such as docker.io/library/alpine:3.20';

/**
 * A scope as the CLI takes it: `sha256:…`, `registry`, `registry/repository`, `registry/repository:tag`
 * or `registry/repository@sha256:…` (then the digest alone counts). The registry comes first, always:
 * `alpine:3.20` is refused rather than guessed, since a purge acts on what it names.
 */
export function scopeFromText(text: string): CacheScope {
  // `host:5000` looks like a digest too (`algorithm:encoded`); a port is all digits.
  if (looksLikeDigest(text) && !/^[^:]+:\d{1,5}$/.test(text)) return digestScope(text);
  const at = text.indexOf('@');
  if (at >= 0) return digestScope(text.slice(at + 1));
  const slash = text.indexOf('/');
  const registryText = slash < 0 ? text : text.slice(0, slash);
  const registry = normaliseRegistry(registryText);
  if (!registry || !(registryText.includes('.') || registryText.includes(':') || registryText === 'localhost')) {
    throw new CacheScopeError(`${JSON.stringify(text)}: expected ${EXAMPLE} (the registry first)`);
  }
  if (slash < 0) return { kind: 'registry', registry };
  const path = text.slice(slash + 1);
  const colon = path.lastIndexOf(':');
  const repositoryText = colon < 0 ? path : path.slice(0, colon);
  return scopeFromParts(registry, repositoryText, colon < 0 ? undefined : path.slice(colon + 1));
}

/** A scope as the admin API takes it: `{digest}` or `{registry, repository?, tag?}`. */
export function scopeFromBody(body: unknown): CacheScope {
  const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const { digest, registry, repository, tag } = fields;
  for (const [name, value] of Object.entries({ digest, registry, repository, tag })) {
    if (value !== undefined && typeof value !== 'string') throw new CacheScopeError(`${name}: expected a string`);
  }
  if (digest !== undefined) {
    if (registry !== undefined || repository !== undefined || tag !== undefined) throw new CacheScopeError('give either digest or registry (with repository and tag), not both');
    return digestScope(digest as string);
  }
  if (registry === undefined) throw new CacheScopeError(`expected {"digest"} or {"registry", "repository"?, "tag"?}: ${EXAMPLE}`);
  const normalised = normaliseRegistry(registry as string);
  if (!normalised) throw new CacheScopeError(`registry: expected a host name such as docker.io, got ${JSON.stringify(registry)}`);
  if (repository === undefined) {
    if (tag !== undefined) throw new CacheScopeError('tag: needs a repository');
    return { kind: 'registry', registry: normalised };
  }
  return scopeFromParts(normalised, repository as string, tag as string | undefined);
}

function digestScope(text: string): CacheScope {
  const digest = parseDigest(text);
  if (!digest) throw new CacheScopeError(`${JSON.stringify(text)}: expected a digest such as sha256:<64 lower-case hex digits>`, 'digest');
  return { kind: 'digest', digest };
}

function scopeFromParts(registry: string, repositoryText: string, tag: string | undefined): CacheScope {
  if (!parseRepositoryName(repositoryText)) throw new CacheScopeError(`repository: expected a repository name such as library/alpine, got ${JSON.stringify(repositoryText)}`);
  const repository = normaliseRepository(registry, repositoryText);
  if (tag === undefined) return { kind: 'repository', registry, repository };
  if (!isTag(tag)) throw new CacheScopeError(`tag: expected a tag such as 3.20, got ${JSON.stringify(tag)}`);
  return { kind: 'tag', registry, repository, tag };
}

/** One string per scope: the key of its pin record, and what answers show. */
export function scopeName(scope: CacheScope): string {
  switch (scope.kind) {
    case 'digest':
      return scope.digest;
    case 'registry':
      return scope.registry;
    case 'repository':
      return `${scope.registry}/${scope.repository}`;
    case 'tag':
      return `${scope.registry}/${scope.repository}:${scope.tag}`;
  }
}

/** True when `registry`/`repository` (as the cache keys them) lie inside a registry, repository or tag scope. */
export function repositoryWithin(scope: CacheScope, registry: string, repository: string): boolean {
  if (scope.kind === 'digest' || !registryWithin(scope.registry, registry)) return false;
  return scope.kind === 'registry' || scope.repository === repository;
}
