import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../config/config-error.js';
import type { CustomDomain } from '../config/custom-domains.js';
import { SERVER_CIPHERS } from './server-ciphers.js';

/** A certificate of the operator's own for a custom domain, served instead of one from Layover's CA. */
export interface CustomCertificate {
  readonly domain: string;
  readonly context: SecureContext;
  /** When the certificate (its first, the leaf) expires: for the log at start. */
  readonly validTo: Date;
}

/**
 * Loads the certFile/keyFile pairs of custom domains at start, so that clients need not trust
 * Layover's CA for those names. Each pair must parse, the key must be the certificate's, the
 * certificate must name the domain and still be valid: anything else stops the start with an
 * error naming the entry (a wrong certificate would otherwise show only as failed handshakes).
 */
export function loadCustomCertificates(domains: readonly CustomDomain[], now: Date = new Date()): Map<string, CustomCertificate> {
  const out = new Map<string, CustomCertificate>();
  domains.forEach((entry, index) => {
    if (!entry.certFile || !entry.keyFile || out.has(entry.domain)) return;
    const where = `customDomains entry ${index + 1} (${entry.domain})`;
    const certPem = read(entry.certFile, `${where}: certFile`);
    const keyPem = read(entry.keyFile, `${where}: keyFile`);
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certPem);
    } catch (error) {
      throw new ConfigError(`${where}: certFile ${entry.certFile} is not a PEM certificate`, { cause: error });
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (error) {
      throw new ConfigError(`${where}: keyFile ${entry.keyFile} is not a PEM private key (an encrypted key is not supported)`, { cause: error });
    }
    if (!leaf.checkPrivateKey(key)) throw new ConfigError(`${where}: keyFile ${entry.keyFile} is not the key of certFile ${entry.certFile}`);
    if (leaf.checkHost(entry.domain) === undefined) throw new ConfigError(`${where}: certFile ${entry.certFile} is not valid for ${entry.domain} (subject: ${leaf.subject.replace(/\n/g, ', ')})`);
    const validTo = new Date(leaf.validTo);
    if (validTo.getTime() <= now.getTime()) throw new ConfigError(`${where}: certFile ${entry.certFile} expired on ${validTo.toISOString()}`);
    let context: SecureContext;
    try {
      context = createSecureContext({ cert: certPem, key: keyPem, ...SERVER_CIPHERS });
    } catch (error) {
      throw new ConfigError(`${where}: ${(error as Error).message}`, { cause: error });
    }
    out.set(entry.domain, { domain: entry.domain, context, validTo });
  });
  return out;
}

function read(path: string, where: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${where}: cannot read ${path} (${(error as NodeJS.ErrnoException).code})`, { cause: error });
  }
}
