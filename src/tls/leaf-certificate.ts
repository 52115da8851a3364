import forge from 'node-forge';
import type { CertificateAuthority } from './ca.js';
import { newCertificate } from './new-certificate.js';
import { signCertificate } from './native-signer.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerates clients whose clocks run behind ours. */
const BACKDATE_MS = DAY_MS;
/** notBefore..notAfter stays within 397 days, the most Apple and browsers accept for a leaf. */
const MAX_VALIDITY_MS = 397 * DAY_MS;
/** RFC 5280 ub-common-name: longer DNS names go in the SAN only. */
const MAX_COMMON_NAME = 64;

/**
 * Issues a server certificate for `hostname` (a normalised DNS name, or `*.` and one for a
 * wildcard certificate) from `ca`, for the process-wide leaf key.
 * Returns the leaf alone as PEM (see SniContexts for why the chain stops there).
 */
export function mintLeafCertificate(ca: CertificateAuthority, hostname: string, now: Date = new Date()): string {
  const caValidity = ca.certificate.validity;
  const notBefore = new Date(Math.max(now.getTime() - BACKDATE_MS, caValidity.notBefore.getTime()));
  const notAfter = new Date(Math.min(notBefore.getTime() + MAX_VALIDITY_MS, caValidity.notAfter.getTime()));
  if (notAfter.getTime() <= now.getTime()) throw new Error(`the Layover CA expired on ${caValidity.notAfter.toISOString()}`);

  const cert = newCertificate({ publicKey: ca.leafKey.publicKey, notBefore, notAfter });
  const withCommonName = hostname.length <= MAX_COMMON_NAME;
  // Clients match the SAN; the CN is only for people and old tools reading the certificate.
  cert.setSubject(withCommonName ? [{ name: 'commonName', value: hostname }] : []);
  cert.setIssuer(ca.certificate.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    // RFC 5280 4.2.1.6: with an empty subject the SAN must be critical.
    { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }], critical: !withCommonName },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.subjectKeyIdentifier },
  ]);
  signCertificate(cert, ca.privateKey);
  return forge.pki.certificateToPem(cert);
}
