import { DOCKER_HUB_HOSTS } from './well-known-hosts.js';

const DOCKER_HUB: ReadonlySet<string> = new Set(DOCKER_HUB_HOSTS);

/** A registry as a client names it (`host[:port]`), with Docker Hub's names as one; ports of one host are different registries. */
const registryName = (registry: string): string => {
  const colon = registry.indexOf(':');
  const host = (colon < 0 ? registry : registry.slice(0, colon)).toLowerCase();
  const name = DOCKER_HUB.has(host) ? 'docker.io' : host;
  return colon < 0 ? name : `${name}${registry.slice(colon)}`;
};

/**
 * Whether a fill's or a cached copy's source (`registry[:port]/repository`, as UpstreamTarget.registry
 * names the registry) came from `registry` (named the same way).
 */
export function sourceIsRegistry(source: string, registry: string): boolean {
  return registryName(source.split('/')[0]!) === registryName(registry);
}
