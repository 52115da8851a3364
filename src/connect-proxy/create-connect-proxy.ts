import type { Metrics } from '../metrics/metrics.js';
import type { FastifyBaseLogger } from 'fastify';
import type { ClientAuth } from '../client-auth/create-client-auth.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { AddressPolicy } from '../upstream/address-policy.js';
import type { HostnameSet } from '../registry/hostname.js';
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
    rules: { intercepted: deps.intercepted, servedPorts: new RegistryPorts(config.registryPatterns), ports: new Set([443, ...config.registryPorts]), policy: config.connectPolicy },
    tlsServer: deps.tlsServer,
    tls: deps.tls,
    // Tunnels reach what storage fetches may reach: public addresses, plus REDIRECT_ALLOW_NETWORKS.
    dial: { resolver: deps.resolver, addressPolicy: new AddressPolicy(config.redirects.allowNetworks), connectTimeoutMs: timeouts.proxyConnectMs },
    authenticator: deps.clientAuth?.authenticator ?? null,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    timeouts: { handshakeMs: config.connections.tlsHandshakeMs, idleMs: Math.max(timeouts.proxyReadMs, timeouts.sendMs) },
  });
}
