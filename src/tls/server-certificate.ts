import { isIP } from 'node:net';
import type { Hostname } from '../registry/hostname.js';
import type { CertificateAuthority } from './ca.js';
import { randomSerial } from './certificate-der.js';

/** As leaf-certificate.ts: longer names go in the SAN only. */
const MAX_COMMON_NAME = 64;

/**
 * Layover's own certificate, for `name` (docker.proxy) and the IP addresses it is reached at:
 * mirror clients (containerd's hosts.toml, podman's registries.conf) may be told
 * `https://<address>`, and a client connecting to an address sends no SNI, so this is the
 * certificate it gets and must find the address in. Signed like every leaf, for the leaf key.
 */
export function mintServerCertificate(ca: CertificateAuthority, name: Hostname, addresses: readonly string[], now: Date = new Date()): string {
  const template = ca.leafTemplate;
  const ips = [...new Set(addresses.map((a) => a.replace(/^\[|\]$/g, '')).filter((a) => isIP(a) !== 0))];
  const fields = {
    ...template.validity(now),
    commonName: name.length <= MAX_COMMON_NAME ? name : null,
    dnsName: name,
    ips,
    serial: randomSerial(),
  };
  return template.issue(fields, ca.privateKey);
}
