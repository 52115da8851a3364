import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { randomSerial } from './certificate-der.js';

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
