import { DOCKER_HUB_HOSTS } from './well-known-hosts.js';

const DOCKER_HUB: ReadonlySet<string> = new Set(DOCKER_HUB_HOSTS);

/** A registry as a client names it (`host[:port]`), with Docker Hub's names as one. */
const registryName = (registry: string): string => {
  const host = registry.split(':')[0]!.toLowerCase();
  return DOCKER_HUB.has(host) ? 'docker.io' : host;
};

/**
 * Whether a fill's or a cached copy's source (`registry[:port]/repository`, as the client that started
 * it named them) came from `registry`, the name another client used.
 */
export function sourceIsRegistry(source: string, registry: string): boolean {
  return registryName(source.split('/')[0]!) === registryName(registry);
}
