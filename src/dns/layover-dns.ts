import type { Logger } from 'pino';
import type { LayoverConfig } from '../config/layover-config.js';
import type { Metrics } from '../metrics/metrics.js';
import { HostnameSet } from '../registry/hostname.js';
import { DnsServer } from './dns-server.js';

/**
 * Layover's DNS server as configured (null when DNS is off), not yet listening. It holds the
 * intercepted names (SERVFAIL) until listenApp has the HTTPS listener up; every other name is
 * forwarded from its first query on.
 */
export function createDnsServer(config: LayoverConfig, logger: Logger, metrics: Metrics, intercepted = new HostnameSet(config.registries)): DnsServer | null {
  if (!config.listen.dns) return null;
  return new DnsServer({
    listen: config.listen.dns,
    intercepted,
    advertise: [...config.advertise],
    upstreams: [...config.upstreamDns],
    policy: config.dnsPolicy,
    logger,
    metrics,
    udpWorkers: config.dnsUdpWorkers,
    holdIntercepted: true,
  });
}
