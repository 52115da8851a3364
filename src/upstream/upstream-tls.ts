import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { LayoverConfig } from '../config/layover-config.js';

/**
 * How every connection to an upstream (a registry, a token realm, a storage host) verifies it: the
 * system's roots plus UPSTREAM_CA, in one TLS context made once. Handed the list of certificates
 * instead, Node makes a context for each connection and parses every root again: about 5 ms of the
 * event loop per new upstream connection, and storage redirects and token realms open one per blob
 * or token (bench/README.md).
 */
export interface UpstreamTls {
  readonly secureContext: SecureContext;
  readonly rejectUnauthorized: boolean;
}

export function upstreamTls(config: Pick<LayoverConfig, 'upstreamCa' | 'verifyUpstreamTls'>): UpstreamTls {
  const extraCa = config.upstreamCa ? [readFileSync(config.upstreamCa, 'utf8')] : [];
  return { secureContext: createSecureContext({ ca: [...rootCertificates, ...extraCa] }), rejectUnauthorized: config.verifyUpstreamTls };
}
