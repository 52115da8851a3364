import type { LayoverConfig } from '../../config/layover-config.js';
import { RegistryPorts } from '../../proxy/upstream-target.js';
import { HostnameSet } from '../../registry/hostname.js';
import { DOCKER_PROXY_HOST } from '../../registry/well-known-hosts.js';

/** Which hostnames are registries Layover proxies, for CredentialStore (UpstreamAuth's isRegistry and wildcardOnly). */
export interface RegistryHosts {
  /** Proxied as a registry (REGISTRIES, Docker Hub's names, custom domains and their upstreams). */
  isRegistry(hostname: string): boolean;
  /** Proxied only through a wildcard of REGISTRIES: no operator named it, so anyone may control it. */
  wildcardOnly(hostname: string): boolean;
}

export function registryHosts(config: Pick<LayoverConfig, 'registries' | 'customDomains'>): RegistryHosts {
  const intercepted = new HostnameSet(config.registries);
  // A custom domain's upstream is named by the operator too, even when REGISTRIES reaches it only through a wildcard.
  const named = new HostnameSet(config.customDomains.map((domain) => domain.registry.split(':')[0]!));
  return {
    isRegistry: (hostname) => intercepted.has(hostname) || named.has(hostname),
    wildcardOnly: (hostname) => intercepted.has(hostname) && !intercepted.named(hostname) && !named.has(hostname),
  };
}

/**
 * Whether a token realm at `hostname` and `port` (null: 443) is out of reach for clients that
 * resolve through Layover: its DNS answers the name with Layover's address, and Layover serves the
 * name only at the ports REGISTRIES gives it (a self-hosted GitLab's registry at 5050, its realm on
 * 443). UpstreamAuth points challenges naming such a realm on the registry's own host at Layover's
 * token endpoint, which relays them (UpstreamAuth.namesHiddenRealm).
 */
export function realmHiddenByDns(config: Pick<LayoverConfig, 'registries' | 'registryPatterns' | 'customDomains'>): (hostname: string, port: number | null) => boolean {
  const intercepted = new HostnameSet(config.registries);
  const ports = new RegistryPorts(config.registryPatterns);
  // docker.proxy and custom domains are Layover's own names, answered at every port it listens on.
  const own = new HostnameSet([DOCKER_PROXY_HOST, ...config.customDomains.map((domain) => domain.domain)]);
  return (hostname, port) => intercepted.has(hostname) && !own.has(hostname) && !ports.allows(hostname, port);
}
