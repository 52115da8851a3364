import type { Metrics } from '../metrics/metrics.js';
import type { FastifyBaseLogger } from 'fastify';
import type { ClientAuth } from '../client-auth/create-client-auth.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { ClientNetworks } from '../dns/client-networks.js';
import { AddressPolicy } from '../upstream/address-policy.js';
import { HostnameSet } from '../registry/hostname.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';
import { RegistryPorts } from '../proxy/upstream-target.js';
import type { UpstreamResolver } from '../upstream/upstream-resolver.js';
import { ConnectProxy, type ConnectProxyOptions, type InterceptServer } from './connect-proxy.js';

export interface ConnectProxyDependencies {
  /** Counts failed handshakes inside intercepted tunnels (completed ones are counted by the TLS listener). */
  metrics?: Metrics;
  logger: FastifyBaseLogger;
  intercepted: HostnameSet;
  /** The TLS listener of port 443 (fastify's server). */
  tlsServer: InterceptServer;
  /** Its certificates (SniContexts.serverOptions()). */
  tls: ConnectProxyOptions['tls'];
  resolver: UpstreamResolver;
  clientAuth: ClientAuth | null;
}

/** The CONNECT handling of the proxy listener, as the configuration says. */
export function createConnectProxy(config: LayoverConfig, deps: ConnectProxyDependencies): ConnectProxy {
  const { timeouts } = config;
  return new ConnectProxy({
    logger: deps.logger,
    rules: { intercepted: deps.intercepted, servedPorts: servedPorts(config), ports: new Set([443, ...config.registryPorts]), policy: config.connectPolicy },
    tlsServer: deps.tlsServer,
    tls: deps.tls,
    // Tunnels reach what storage fetches may reach: public addresses, plus REDIRECT_ALLOW_NETWORKS.
    dial: { resolver: deps.resolver, addressPolicy: new AddressPolicy(config.redirects.allowNetworks), connectTimeoutMs: timeouts.proxyConnectMs },
    authenticator: deps.clientAuth?.authenticator ?? null,
    // A CONNECT proxy open to anyone relays anyone's traffic from Layover's address; credentials, when asked, decide instead.
    tunnelClients: deps.clientAuth ? null : new ClientNetworks(config.connectAllowNetworks),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    timeouts: { handshakeMs: config.connections.tlsHandshakeMs, idleMs: Math.max(timeouts.proxyReadMs, timeouts.sendMs) },
  });
}

/**
 * Where each intercepted name is served: a registry at the ports REGISTRIES gives it (443 for a name
 * it gives none), docker.proxy and custom domains at every listener (a storage redirect of a
 * registry at 5050 sends its client to docker.proxy:5050).
 */
function servedPorts(config: LayoverConfig): ConnectProxyOptions['rules']['servedPorts'] {
  const registries = new RegistryPorts(config.registryPatterns);
  const everywhere = new HostnameSet([DOCKER_PROXY_HOST, ...config.customDomains.map((domain) => domain.domain)]);
  return { allows: (host, port) => everywhere.has(host) || registries.allows(host, port) };
}
