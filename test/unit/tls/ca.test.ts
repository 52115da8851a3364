import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadOrCreateCa } from '../../../src/tls/ca.js';

const DAY_MS = 24 * 60 * 60 * 1000;
let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'layover-ca-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadOrCreateCa', () => {
  test('the first start creates a root CA in a new 0700 directory', async () => {
    const dir = join(root, 'state', 'ca');
    const { ca, created } = await loadOrCreateCa(dir);

    expect(created).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'ca.key']); // no temp files left behind
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(ca.certPem);

    const x509 = new X509Certificate(ca.certPem);
    expect(x509.ca).toBe(true);
    expect(x509.fingerprint256).toBe(ca.fingerprint256);
    expect(x509.subject).toMatch(/^CN=Layover CA [0-9a-f]{8}$/m);
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(Date.parse(x509.validFrom)).toBeLessThanOrEqual(Date.now() - 23 * 60 * 60 * 1000);
    expect(Date.parse(x509.validTo)).toBeGreaterThan(Date.now() + 9 * 365 * DAY_MS);

    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: ca.certPem, encoding: 'utf8' });
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier:\s+[0-9A-F:]{59}/);
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
  });

  test('the key file is 0600 even under a permissive umask', async () => {
    const previous = process.umask(0);
    try {
      await loadOrCreateCa(root);
    } finally {
      process.umask(previous);
    }
    expect((await stat(join(root, 'ca.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'ca.crt'))).mode & 0o777).toBe(0o644);
  });

  test('a restart loads the same CA', async () => {
    const first = await loadOrCreateCa(root);
    const second = await loadOrCreateCa(root);
    expect(second.created).toBe(false);
    expect(second.ca.fingerprint256).toBe(first.ca.fingerprint256);
    expect(second.ca.certPem).toBe(first.ca.certPem);
    expect(second.ca.privateKey.equals(first.ca.privateKey)).toBe(true);
  });

  test("the CA's key identifier is its subjectKeyIdentifier, or RFC 5280's SHA-1 of its key without one, as forge reads them", async () => {
    const { ca } = await loadOrCreateCa(root);
    const forgeCert = forge.pki.certificateFromPem(ca.certPem);
    const ext = forgeCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    expect(ext?.subjectKeyIdentifier).toMatch(/^[0-9a-f]{40}$/);
    expect(ca.subjectKeyIdentifier.toString('hex')).toBe(ext!.subjectKeyIdentifier);

    // A CA brought by an operator, made without the extension (openssl, RSA, CA:TRUE).
    const dir = join(root, 'no-ski');
    await mkdir(dir, { mode: 0o700 });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '30', '-subj', '/CN=No SKI CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'subjectKeyIdentifier=none', '-addext', 'authorityKeyIdentifier=none'], { stdio: 'ignore' });
    const bare = forge.pki.certificateFromPem(await readFile(join(dir, 'ca.crt'), 'utf8'));
    expect(bare.getExtension('subjectKeyIdentifier')).toBeFalsy();
    const loaded = await loadOrCreateCa(dir);
    expect(loaded.created).toBe(false);
    expect(loaded.ca.subjectKeyIdentifier.toString('binary')).toBe(bare.generateSubjectKeyIdentifier().getBytes());

    // One whose identifier is not the key's hash: its own value is the leaves' authorityKeyIdentifier.
    const own = join(root, 'own-ski');
    await mkdir(own, { mode: 0o700 });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(own, 'ca.key'), '-out', join(own, 'ca.crt'), '-days', '30', '-subj', '/CN=Own SKI CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'subjectKeyIdentifier=00:11:22:33:44', '-addext', 'authorityKeyIdentifier=none'], { stdio: 'ignore' });
    expect((await loadOrCreateCa(own)).ca.subjectKeyIdentifier.toString('hex')).toBe('0011223344');
  });

  test('two installations get CAs with different names and keys', async () => {
    const a = await loadOrCreateCa(join(root, 'a'));
    const b = await loadOrCreateCa(join(root, 'b'));
    expect(new X509Certificate(a.ca.certPem).subject).not.toBe(new X509Certificate(b.ca.certPem).subject);
    expect(a.ca.fingerprint256).not.toBe(b.ca.fingerprint256);
  });

  test('concurrent first starts in one directory agree on one CA', async () => {
    const results = await Promise.all([loadOrCreateCa(root), loadOrCreateCa(root), loadOrCreateCa(root)]);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(new Set(results.map((result) => result.ca.fingerprint256)).size).toBe(1);
    expect(new X509Certificate(results[0]!.ca.certPem).checkPrivateKey(results[2]!.ca.privateKey)).toBe(true);
  });
});

describe('a damaged CA directory is an error, never a new CA', () => {
  const damages: Array<[string, (dir: string, other: string) => Promise<void>, RegExp]> = [
    ['key without certificate', (dir) => unlink(join(dir, 'ca.crt')), /half-written: .*ca\.key exists but .*ca\.crt does not/],
    ['certificate without key', (dir) => unlink(join(dir, 'ca.key')), /half-written: .*ca\.crt exists but .*ca\.key does not/],
    ['truncated key', (dir) => truncateHalf(join(dir, 'ca.key')), /ca\.key: cannot parse the CA file as a PEM private key/],
    ['truncated certificate', (dir) => truncateHalf(join(dir, 'ca.crt')), /ca\.crt: cannot parse the CA file as a PEM certificate/],
    ['key of another CA', (dir, other) => copyFile(join(other, 'ca.key'), join(dir, 'ca.key')), /ca\.key does not belong to .*ca\.crt/],
  ];

  test.each(damages)('%s', async (_name, damage, message) => {
    const dir = join(root, 'ca');
    const other = join(root, 'other');
    await loadOrCreateCa(dir);
    await loadOrCreateCa(other);
    await damage(dir, other);
    const before = (await readdir(dir)).sort();

    await expect(loadOrCreateCa(dir)).rejects.toThrow(message);
    expect((await readdir(dir)).sort()).toEqual(before);
  });
});

async function truncateHalf(path: string): Promise<void> {
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.slice(0, text.length / 2));
}
