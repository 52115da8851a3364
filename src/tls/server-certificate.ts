import { isIP } from 'node:net';
import forge from 'node-forge';
import type { Hostname } from '../registry/hostname.js';
import type { CertificateAuthority } from './ca.js';
import { newCertificate } from './new-certificate.js';
import { signCertificate } from './native-signer.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** As leaf-certificate.ts: tolerate clocks behind ours, stay within the 397 days clients accept. */
const BACKDATE_MS = DAY_MS;
const MAX_VALIDITY_MS = 397 * DAY_MS;
const MAX_COMMON_NAME = 64;

/**
 * Layover's own certificate, for `name` (docker.proxy) and the IP addresses it is reached at:
 * mirror clients (containerd's hosts.toml, podman's registries.conf) may be told
 * `https://<address>`, and a client connecting to an address sends no SNI, so this is the
 * certificate it gets and must find the address in. Signed like every leaf, for the leaf key.
 */
export function mintServerCertificate(ca: CertificateAuthority, name: Hostname, addresses: readonly string[], now: Date = new Date()): string {
  const caValidity = ca.certificate.validity;
  const notBefore = new Date(Math.max(now.getTime() - BACKDATE_MS, caValidity.notBefore.getTime()));
  const notAfter = new Date(Math.min(notBefore.getTime() + MAX_VALIDITY_MS, caValidity.notAfter.getTime()));
  if (notAfter.getTime() <= now.getTime()) throw new Error(`the Layover CA expired on ${caValidity.notAfter.toISOString()}`);

  const ips = [...new Set(addresses.map((a) => a.replace(/^\[|\]$/g, '')).filter((a) => isIP(a) !== 0))];
  const cert = newCertificate({ publicKey: ca.leafKey.publicKey, notBefore, notAfter });
  const withCommonName = name.length <= MAX_COMMON_NAME;
  cert.setSubject(withCommonName ? [{ name: 'commonName', value: name }] : []);
  cert.setIssuer(ca.certificate.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: name }, ...ips.map((ip) => ({ type: 7, ip }))], critical: !withCommonName },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.subjectKeyIdentifier },
  ]);
  signCertificate(cert, ca.privateKey);
  return forge.pki.certificateToPem(cert);
}
