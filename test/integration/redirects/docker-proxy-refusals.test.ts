/**
 * docker.proxy is no open proxy. Through the real Layover process (REDIRECTS=rewrite), curl inside
 * the sandbox asks docker.proxy for unsigned, tampered and expired URLs, and for URLs signed with
 * Layover's own key but aimed at addresses no storage fetch may reach: Layover's loopback address
 * (literal, IPv4-mapped IPv6, and through a name that resolves there) and the cloud metadata
 * service. Each gets a 403 DENIED naming the reason, and the fixture listening on 127.0.0.1:8443
 * (reachable, as the first test shows) never sees a request. Control cases prove each refusal is
 * the check's doing: the same URL, correctly signed, unexpired or aimed at an allowed host, works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageRedirect } from '../../../src/proxy/redirects/signed-url.js';
import { fixtureBlob, LOOPBACK_LISTEN, ociError, REBIND_HOST, REDIRECTING_HOST, type RedirectingBench, startRedirectingBench, STORAGE_HOST } from './redirecting-bench.js';

let rb: RedirectingBench;
beforeAll(async () => {
  rb = await startRedirectingBench();
}, 120_000);
afterAll(() => rb?.bench.close());

const inAMinute = (): number => Math.floor(Date.now() / 1000) + 60;
const loopbackRequests = () => rb.fixture.requests().filter((r) => r.local === LOOPBACK_LISTEN);

/** A redirect for blob `i` whose target is the fixture's storage host (allowed), fields overridable. */
function redirectFor(i: number, fields: Partial<StorageRedirect> = {}): StorageRedirect {
  const { digest } = fixtureBlob(i);
  return { digest, registry: REDIRECTING_HOST, repo: 'chain', expires: inAMinute(), target: `https://${STORAGE_HOST}/final/${digest}?sig=x`, ...fields };
}

async function expectRefused(url: string, reason: string, message?: RegExp): Promise<void> {
  const before = loopbackRequests().length;
  const result = await rb.get(url);
  expect(result.status, `${result.status}, ${result.body.length} bytes`).toBe(403);
  const error = ociError(result);
  expect(error.code).toBe('DENIED');
  expect(error.detail?.reason).toBe(reason);
  if (message) expect(error.message).toMatch(message);
  await rb.syncFixture();
  expect(loopbackRequests().slice(before)).toEqual([]);
}

describe('docker.proxy refuses', () => {
  it('(control) the loopback listener answers when asked directly, so a fetch there would be seen', async () => {
    const { digest } = fixtureBlob(0);
    const direct = await rb.bench.sandbox.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', rb.bench.ca.certFile, `https://${LOOPBACK_LISTEN}/final/${digest}`]);
    expect(direct.stdout).toBe('200');
    await rb.syncFixture();
    expect(loopbackRequests().map((r) => r.path)).toEqual([`/final/${digest}`]);
  });

  it('an unsigned URL', async () => {
    const signed = new URL(rb.sign(redirectFor(1)));
    signed.searchParams.delete('sig');
    await expectRefused(signed.href, 'unsigned');
  });

  it('tampered URLs: another target, digest, registry, expiry or signature', async () => {
    const blob = fixtureBlob(1);
    const genuine = (await rb.get(rb.blobUrl('chain', blob.digest))).headers.location ?? '';
    expect(genuine).toMatch(/^https:\/\/docker\.proxy\//);
    const tamper = (edit: (url: URL) => void): string => {
      const url = new URL(genuine);
      edit(url);
      return url.href;
    };
    const loopbackTarget = Buffer.from(`https://${LOOPBACK_LISTEN}/final/${blob.digest}`).toString('base64url');
    await expectRefused(tamper((u) => u.searchParams.set('target', loopbackTarget)), 'bad-signature');
    await expectRefused(tamper((u) => (u.pathname = u.pathname.replace(blob.digest, fixtureBlob(2).digest))), 'bad-signature');
    await expectRefused(tamper((u) => u.searchParams.set('registry', 'registry.test')), 'bad-signature');
    await expectRefused(tamper((u) => u.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3600))), 'bad-signature');
    await expectRefused(tamper((u) => u.searchParams.set('sig', `${u.searchParams.get('sig')!.slice(0, -2)}AA`)), 'bad-signature');
    // (control) the genuine URL is served.
    const served = await rb.get(genuine);
    expect(served.status).toBe(200);
    expect(served.body.equals(blob.bytes)).toBe(true);
  });

  it('an expired URL, though correctly signed', async () => {
    await expectRefused(rb.sign(redirectFor(3, { expires: Math.floor(Date.now() / 1000) - 1 })), 'expired', /expired/);
    // (control) the same redirect, unexpired, is served.
    const fresh = await rb.get(rb.sign(redirectFor(3)));
    expect(fresh.status).toBe(200);
    expect(fresh.body.equals(fixtureBlob(3).bytes)).toBe(true);
  });

  it('signed URLs aimed at 127.0.0.1, which is not the upstream’s address', async () => {
    const { digest } = fixtureBlob(4);
    await expectRefused(rb.sign(redirectFor(4, { target: `https://${LOOPBACK_LISTEN}/final/${digest}` })), 'refused', /127\.0\.0\.1 is a loopback address/);
    await expectRefused(rb.sign(redirectFor(4, { target: `https://[::ffff:127.0.0.1]:8443/final/${digest}` })), 'refused', /loopback/);
    await expectRefused(rb.sign(redirectFor(4, { target: `https://${REBIND_HOST}:8443/final/${digest}` })), 'refused', /127\.0\.0\.1 is a loopback address/);
  });

  it('a signed URL aimed at the cloud metadata service 169.254.169.254', async () => {
    await expectRefused(rb.sign(redirectFor(5, { target: 'http://169.254.169.254/latest/meta-data/' })), 'refused', /169\.254\.169\.254 is a link-local address/);
  });

  it('a registry’s redirect to Layover’s own loopback port, when the client follows it', async () => {
    const { digest } = fixtureBlob(6);
    const redirect = await rb.get(rb.blobUrl('private', digest));
    expect(redirect.status).toBe(307);
    await expectRefused(redirect.headers.location ?? '', 'refused', /loopback/);
  });

  it('a signed URL for a registry Layover does not proxy', async () => {
    const result = await rb.get(rb.sign(redirectFor(7, { registry: 'registry-direct.test' })));
    expect(result.status).toBe(403);
    expect(ociError(result).code).toBe('DENIED');
  });

  it('nothing on a registry’s name: there the same path goes to the registry', async () => {
    const { digest } = fixtureBlob(10);
    const result = await rb.get(`https://${REDIRECTING_HOST}/layover/blobs/${digest}`);
    expect(result.status).toBe(404);
    await rb.syncFixture();
    expect(rb.requestsFor(digest).map((r) => `${r.host} ${r.path}`)).toEqual([`${REDIRECTING_HOST} /layover/blobs/${digest}`]);
  });

  it('paths other than signed blob URLs', async () => {
    // `/v2/<intercepted registry>/…` on docker.proxy is a mirror request (podman's path prefix,
    // test/integration/mirror/): only registries Layover proxies, so these name others or nothing.
    const { digest } = fixtureBlob(8);
    for (const path of [`/v2/evil.example/chain/blobs/${digest}`, `/v2/chain/blobs/${digest}`, `/forcecachesecure/${REDIRECTING_HOST}/originalwas/v2/chain/blobs/${digest}`]) {
      const result = await rb.get(`https://docker.proxy${path}`);
      expect(result.status, path).toBe(404);
    }
    await rb.syncFixture();
    expect(rb.requestsFor(digest)).toEqual([]);
  });
});
