import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent } from 'undici';
import type { LayoverConfig } from '../config/layover-config.js';
import type { UpstreamResolver } from './upstream-resolver.js';

/**
 * The undici dispatcher for every upstream request. An Agent instance, not an
 * options object, because reply-from then uses it as it is: with bare options
 * a self-signed upstream was accepted (REGISTRY-NOTES). Names resolve through
 * our own resolver only; TLS is verified against the system roots plus
 * --upstream-ca; the timeouts carry nginx's proxy_* meanings.
 */
export function createUpstreamAgent(config: LayoverConfig, resolver: UpstreamResolver): Agent {
  const extraCa = config.upstreamCa ? [readFileSync(config.upstreamCa, 'utf8')] : [];
  return new Agent({
    connect: {
      lookup: resolver.lookup,
      ca: [...rootCertificates, ...extraCa],
      rejectUnauthorized: config.verifyUpstreamTls,
      timeout: config.timeouts.proxyConnectMs,
    },
    // proxy_read_timeout: the longest silence while reading a response, head or body.
    headersTimeout: config.timeouts.proxyReadMs,
    bodyTimeout: config.timeouts.proxyReadMs,
    keepAliveTimeout: 30_000,
    connections: 64,
  });
}
