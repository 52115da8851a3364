import { createHash, generateKeyPairSync, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { buildCaCertificate } from '../../../src/tls/ca-certificate.js';
import { signSha256Digest } from '../../../src/tls/native-signer.js';
import { opensslVerify } from './openssl.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

describe('native RSA signer', () => {
  test('signing a SHA-256 digest equals crypto.sign: RSASSA-PKCS1-v1_5 is deterministic', () => {
    for (const size of [0, 1, 1000]) {
      const data = randomBytes(size);
      const digest = createHash('sha256').update(data).digest();
      const signature = signSha256Digest(digest, rsa.privateKey);
      expect(signature.equals(sign('sha256', data, rsa.privateKey))).toBe(true);
      expect(verify('sha256', data, rsa.publicKey, signature)).toBe(true);
    }
  });

  test('refuses input it cannot sign correctly', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => signSha256Digest(randomBytes(20), rsa.privateKey)).toThrow(/32-byte/);
    expect(() => signSha256Digest(randomBytes(32), ec.privateKey)).toThrow(/RSA key/);
  });

  test('a certificate signed through forge with the native signer verifies in Node and openssl', async () => {
    const pem = buildCaCertificate({ ...rsa, commonName: 'Layover CA signer-test' });
    const cert = new X509Certificate(pem);
    expect(cert.verify(rsa.publicKey)).toBe(true);
    expect(cert.verify(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey)).toBe(false);
    const result = await opensslVerify(pem, pem);
    expect(result.output).toContain(': OK');
    expect(result.ok).toBe(true);
  });
});
