import { constants, privateEncrypt, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

/** DER prefix of DigestInfo { sha256, NULL } (RFC 8017 section 9.2, note 1); the 32-byte hash follows. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * Signs `cert` with a Node `KeyObject` instead of a forge key.
 *
 * forge's pure-JS RSA signing costs about 41 ms per certificate; `cert.sign` only calls
 * `key.sign(md)` on whatever it is given, so handing it this signer moves the private-key
 * operation into OpenSSL (about 1 ms) and keeps the CA key out of forge's representation.
 */
export function signCertificate(cert: forge.pki.Certificate, key: KeyObject): void {
  const signer = {
    sign(md: forge.md.MessageDigest): string {
      if (md.algorithm !== 'sha256') throw new Error(`native signer: unsupported digest ${md.algorithm}`);
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      return signSha256Digest(digest, key).toString('binary');
    },
  };
  // forge types `sign` as taking its own RSA key; it only ever calls `.sign(md)` on it (x509.js).
  cert.sign(signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
}

/**
 * RSASSA-PKCS1-v1_5 over a precomputed SHA-256 hash: private-key "encryption" with type-1
 * padding of the DigestInfo is exactly the PKCS#1 v1.5 signature, so the result equals
 * `crypto.sign('sha256', data, key)` for the data that hashed to `digest`.
 */
export function signSha256Digest(digest: Buffer, key: KeyObject): Buffer {
  if (digest.length !== 32) throw new Error(`expected a 32-byte SHA-256 digest, got ${digest.length} bytes`);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`expected an RSA key, got ${key.asymmetricKeyType}`);
  return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([SHA256_DIGEST_INFO, digest]));
}
