import { randomBytes, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

export interface NewCertificateOptions {
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
}

/**
 * An unsigned X.509 v3 certificate with a fresh serial, the given key and validity;
 * the caller adds names and extensions, then signs it with `signCertificate`.
 */
export function newCertificate(options: NewCertificateOptions): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.version = 2; // v3
  cert.serialNumber = randomSerial().toString('hex');
  cert.publicKey = forge.pki.publicKeyFromPem(options.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.validity.notBefore = options.notBefore;
  cert.validity.notAfter = options.notAfter;
  return cert;
}

/**
 * 16 random bytes, positive and minimally encoded as a DER INTEGER (forge and LeafTemplate write
 * them verbatim): a high first bit would make the serial negative and a leading zero byte would
 * be non-minimal DER, both of which strict parsers (Go) reject. Forcing the first byte into
 * 0x40..0x7f keeps 126 random bits (RFC 5280 asks for >= 64 bits of entropy, CA/B Forum for
 * unpredictability).
 */
export function randomSerial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes;
}
