/**
 * Issue 10, item 9: a registry on a private address may redirect blobs to itself, so its own
 * address is allowed for storage fetches; but only at its own scheme and port. Another port on
 * the same address is another service (an admin port, a database), which the registry must not be
 * able to point Layover at. Through the real Layover process and the redirecting fixture
 * (test/fixtures/redirecting-registry.mjs), which listens on the registry's address at 443 and at
 * 8443; URLs are signed with Layover's own key, as its redirects are.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { StorageRedirect } from '../../../src/proxy/redirects/signed-url.js';
import { fixtureBlob, ociError, REDIRECTING_HOST, REGISTRY_OTHER_PORT_LISTEN, type RedirectingBench, startRedirectingBench } from '../redirects/redirecting-bench.js';

let rb: RedirectingBench;
beforeAll(async () => {
  rb = await startRedirectingBench();
}, 120_000);
afterAll(() => rb?.bench.close());

const otherPortRequests = () => rb.fixture.requests().filter((r) => r.local === REGISTRY_OTHER_PORT_LISTEN);
const redirectTo = (i: number, target: string): StorageRedirect => ({ digest: fixtureBlob(i).digest, registry: REDIRECTING_HOST, repo: 'chain', expires: Math.floor(Date.now() / 1000) + 60, target });

it('(control) follows a redirect to the registry itself, at its own port, on its loopback address', async () => {
  const { digest, bytes } = fixtureBlob(1);
  const result = await rb.get(rb.sign(redirectTo(1, `https://${REDIRECTING_HOST}/final/${digest}`)));
  expect(result.status).toBe(200);
  expect(result.body.equals(bytes)).toBe(true);
});

it.each([`https://${REDIRECTING_HOST}:8443`, `https://${REGISTRY_OTHER_PORT_LISTEN}`])('refuses a redirect to the registry address at another port: %s', async (origin) => {
  const { digest } = fixtureBlob(2);
  const result = await rb.get(rb.sign(redirectTo(2, `${origin}/final/${digest}`)));
  expect(result.status).toBe(403);
  expect(ociError(result)).toMatchObject({ code: 'DENIED', detail: { reason: 'refused' }, message: expect.stringContaining('loopback') });
  await rb.syncFixture();
  expect(otherPortRequests()).toEqual([]);
});
