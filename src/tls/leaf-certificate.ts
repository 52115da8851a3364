import type { CertificateAuthority } from './ca.js';
import { randomSerial } from './certificate-der.js';

/** RFC 5280 ub-common-name: longer DNS names go in the SAN only. */
const MAX_COMMON_NAME = 64;

/**
 * Issues a server certificate for `hostname` (a normalised DNS name, or `*.` and one for a
 * wildcard certificate) from `ca`, for the process-wide leaf key: backdated a day, valid for at
 * most 397 days and never past the CA; CN (for people and old tools; clients match the SAN) and
 * SAN name the host; serverAuth only, not a CA. Returns the leaf alone as PEM (see SniContexts
 * for why the chain stops there).
 */
export function mintLeafCertificate(ca: CertificateAuthority, hostname: string, now: Date = new Date()): string {
  const template = ca.leafTemplate;
  const fields = {
    ...template.validity(now),
    commonName: hostname.length <= MAX_COMMON_NAME ? hostname : null,
    dnsName: hostname,
    serial: randomSerial(),
  };
  return template.issue(fields, ca.privateKey);
}
