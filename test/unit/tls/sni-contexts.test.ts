import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, onTestFinished, test, vi } from 'vitest';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { loadOrCreateCa, type CertificateAuthority } from '../../../src/tls/ca.js';
import { SniContexts, type SniContextsOptions } from '../../../src/tls/sni-contexts.js';
import { recordingLogger } from './recording-logger.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const intercepted = new HostnameSet(['quay.io', 'ghcr.io', 'registry-1.docker.io', '*.pkg.dev', '*.0.0.1']);
let dir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'layover-sni-'));
  ({ ca } = await loadOrCreateCa(dir));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function setup(options: Partial<SniContextsOptions> = {}) {
  const log = recordingLogger();
  const sni = new SniContexts({ ca, intercepted, logger: log.logger, ...options });
  const { SNICallback } = sni.serverOptions();
  /** The context the TLS server would get for `servername`. */
  const ask = (servername: string) =>
    new Promise<SecureContext | undefined>((resolve, reject) =>
      SNICallback(servername, (err, ctx) => (err ? reject(err) : resolve(ctx))),
    );
  return { sni, ask, ...log };
}

describe('SniContexts', () => {
  test('mints one context per name whatever its case or trailing dot, and logs it once', async () => {
    const { ask, mints } = setup();
    const contexts = [await ask('Quay.IO'), await ask('quay.io.'), await ask('quay.io')];
    expect(contexts[0]).toBeDefined();
    expect(contexts[1]).toBe(contexts[0]);
    expect(contexts[2]).toBe(contexts[0]);
    expect(mints()).toHaveLength(1);
    expect(mints()[0]).toMatchObject({ host: 'quay.io', level: 30 });
    expect(mints()[0]!.ms).toEqual(expect.any(Number));
    expect(await ask('europe-docker.pkg.dev')).not.toBe(contexts[0]);
    expect(mints().map((line) => line.host)).toEqual(['quay.io', 'europe-docker.pkg.dev']);
  });

  test.each([
    ['a name that is not intercepted', 'example.com'],
    ['the wildcard suffix itself', 'pkg.dev'],
    ['the default name', 'docker.proxy'],
    ['an empty name', ''],
    ['a 300-byte name', `${'a'.repeat(296)}.pkg.dev`],
    ['a name with a NUL', 'quay.io\u0000.evil'],
    ['a name with a port', 'quay.io:443'],
    ['a wildcard', '*.pkg.dev'],
    ['a name with spaces', 'x y.pkg.dev'],
    ['a non-ASCII name', 'ümlaut.pkg.dev'],
    ['an IPv4 literal, even one a wildcard matches', '127.0.0.1'],
    ['an IPv6 literal', '::1'],
    ['empty labels', 'a..pkg.dev'],
  ])('%s gets the default certificate and mints nothing', async (_what, servername) => {
    const { ask, mints, lines } = setup();
    const fallback = await ask('docker.proxy');
    expect(fallback).toBeDefined();
    await expect(ask(servername)).resolves.toBe(fallback);
    expect(mints()).toHaveLength(0);
    expect(lines.filter((line) => line.level >= 50)).toHaveLength(0);
  });

  test('the default certificate names docker.proxy and matches the key it is served with', () => {
    const { sni } = setup();
    const { cert, key } = sni.serverOptions();
    const x509 = new X509Certificate(cert);
    expect(x509.subjectAltName).toBe('DNS:docker.proxy');
    expect(x509.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(x509.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  test('a custom default name is used, and a malformed one is refused', () => {
    const { sni } = setup({ defaultName: 'Layover.Internal.' });
    expect(new X509Certificate(sni.serverOptions().cert).subjectAltName).toBe('DNS:layover.internal');
    expect(() => setup({ defaultName: 'not a name' })).toThrow(/defaultName/);
  });

  test('names under a wildcard share the wildcard certificate of their parent', async () => {
    const { ask, mints } = setup();
    const first = await ask('europe-docker.pkg.dev');
    expect(await ask('us-docker.pkg.dev')).toBe(first);
    const deeper = await ask('x.us-docker.pkg.dev');
    expect(deeper).not.toBe(first);
    expect(await ask('y.us-docker.pkg.dev')).toBe(deeper);
    expect(mints().map((line) => [line.host, line.certificate])).toEqual([
      ['europe-docker.pkg.dev', '*.pkg.dev'],
      ['x.us-docker.pkg.dev', '*.us-docker.pkg.dev'],
    ]);
    // An exact name keeps a certificate of its own.
    await ask('quay.io');
    expect(mints().at(-1)).toMatchObject({ host: 'quay.io', certificate: 'quay.io' });
  });

  test('by default the cache keeps 256 certificates: a client cycling through names under a wildcard cannot grow it', async () => {
    const { ask, mints } = setup();
    for (let i = 0; i <= 256; i++) await ask(`x.p${i}.pkg.dev`);
    expect(mints()).toHaveLength(257);
    await ask('x.p256.pkg.dev');
    expect(mints()).toHaveLength(257);
    await ask('x.p0.pkg.dev'); // the least recently used, evicted
    expect(mints()).toHaveLength(258);
  });

  test('the cache is bounded: the least recently used name is minted again', async () => {
    const { ask, mints } = setup({ maxEntries: 2 });
    const quay = await ask('quay.io');
    await ask('ghcr.io');
    expect(await ask('quay.io')).toBe(quay); // now ghcr.io is the oldest
    const pkg = await ask('a.pkg.dev'); // evicts ghcr.io
    expect(await ask('quay.io')).toBe(quay);
    await ask('ghcr.io'); // minted again, evicts a.pkg.dev
    expect(await ask('a.pkg.dev')).not.toBe(pkg);
    expect(mints().map((line) => line.host)).toEqual(['quay.io', 'ghcr.io', 'a.pkg.dev', 'ghcr.io', 'a.pkg.dev']);
  });

  test('a failed mint fails that handshake, is logged, and is retried by the next one', async () => {
    let broken = false;
    const flaky: CertificateAuthority = {
      ...ca,
      get privateKey() {
        if (broken) throw new Error('signing key unavailable');
        return ca.privateKey;
      },
    };
    const { ask, mints, lines } = setup({ ca: flaky });
    broken = true;
    await expect(ask('quay.io')).rejects.toThrow('signing key unavailable');
    expect(lines.filter((line) => line.level === 50 && line.host === 'quay.io')).toHaveLength(1);
    broken = false;
    await expect(ask('quay.io')).resolves.toBeDefined();
    expect(mints()).toHaveLength(1);
  });

  test('a process running for a year renews its certificates before they expire', async () => {
    vi.useFakeTimers({ now: Date.now(), toFake: ['Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const { ask, mints } = setup();
    const quay = await ask('quay.io');
    const fallback = await ask('example.com');
    vi.setSystemTime(Date.now() + 299 * DAY_MS);
    expect(await ask('quay.io')).toBe(quay);
    expect(await ask('example.com')).toBe(fallback);
    vi.setSystemTime(Date.now() + 2 * DAY_MS);
    expect(await ask('quay.io')).not.toBe(quay);
    expect(await ask('example.com')).not.toBe(fallback);
    expect(mints().map((line) => line.host)).toEqual(['quay.io', 'quay.io', 'docker.proxy']);
  });

  test('simultaneous first asks for one name share one mint', async () => {
    const { ask, mints } = setup();
    const contexts = await Promise.all(Array.from({ length: 20 }, () => ask('registry-1.docker.io')));
    expect(new Set(contexts).size).toBe(1);
    expect(mints()).toHaveLength(1);
  });
});
