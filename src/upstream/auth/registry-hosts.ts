import type { LayoverConfig } from '../../config/layover-config.js';
import { HostnameSet } from '../../registry/hostname.js';

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
