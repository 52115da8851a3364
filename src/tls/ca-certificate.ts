import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { newCertificate } from './new-certificate.js';
import { signCertificate } from './native-signer.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Long enough that nodes rarely need a new trust anchor; leaves stay short-lived. */
export const CA_VALIDITY_DAYS = 3650;

export interface CaCertificateOptions {
  privateKey: KeyObject;
  publicKey: KeyObject;
  commonName: string;
  now?: Date;
}

/** Builds and self-signs the Layover root certificate; returns it as PEM. */
export function buildCaCertificate(options: CaCertificateOptions): string {
  const now = options.now ?? new Date();
  const cert = newCertificate({
    publicKey: options.publicKey,
    // Backdated so that nodes whose clocks lag a little still accept it.
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
  });
  const name = [
    { name: 'commonName', value: options.commonName },
    { name: 'organizationName', value: 'Layover' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    // pathLen 0: this CA signs leaves only, so a leaked leaf key cannot issue further.
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(cert, options.privateKey);
  return forge.pki.certificateToPem(cert);
}
