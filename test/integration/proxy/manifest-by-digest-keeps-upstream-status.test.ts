/**
 * Issue 10, item 12: a manifest GET by digest whose upstream answer was not 200 became
 * `502 DIGEST_INVALID` ("does not match its digest"): Layover hashed the error body. Only a 200 body
 * is hashed now; a missing digest or repository keeps the registry's 404 and code (checked against
 * the real distribution registry asked directly), a refusal its status and challenge, a rate limit
 * its Retry-After (from test/fixtures/hostile-manifest-registry.mjs), and a failing upstream with
 * nothing cached is 503 UNAVAILABLE, by digest as by tag.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, DIRECT_HOST, INTERCEPTED_HOST } from '../../bench/bench.js';
import { OCI_MANIFEST } from '../../bench/images.js';
import { curl, type CurlResult } from './curl.js';
import { HOSTILE_HOST, startHostileManifestBench } from './hostile-manifest-bench.js';

let bench: Bench;
beforeAll(async () => {
  ({ bench } = await startHostileManifestBench());
}, 120_000);
afterAll(() => bench?.close());

const missing = `sha256:${randomBytes(32).toString('hex')}`;
const accept = ['-H', `Accept: ${OCI_MANIFEST}`];
const codeOf = (answer: CurlResult): string | undefined => {
  try {
    return (JSON.parse(answer.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
};

describe('the real registry: what it answers directly, Layover answers too', () => {
  it.each([
    ['a digest the repository does not hold', () => `${bench.images.oci!.repository}/manifests/${missing}`],
    ['a repository that does not exist', () => `no/such/repository/manifests/${missing}`],
  ])('%s', async (_case, path) => {
    for (const method of [[], ['-I']]) {
      const direct = await curl(bench, `https://${DIRECT_HOST}/v2/${path()}`, [...accept, ...method], { direct: true });
      const through = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${path()}`, [...accept, ...method]);
      expect(direct.status).toBe(404);
      expect(through.status, through.body.toString()).toBe(direct.status);
      expect(codeOf(through)).toBe(codeOf(direct));
    }
  });
});

describe('a hostile upstream: the status and its headers stay', () => {
  const ask = (status: number, reference = missing, method: string[] = []) => curl(bench, `https://${HOSTILE_HOST}/v2/status-${status}/app/manifests/${reference}`, [...accept, ...method]);

  it('401 keeps its challenge, 403 is DENIED, 404 is MANIFEST_UNKNOWN', async () => {
    const unauthorized = await ask(401);
    expect(unauthorized.status).toBe(401);
    expect(codeOf(unauthorized)).toBe('UNAUTHORIZED');
    expect(unauthorized.headers['www-authenticate']).toBe('Basic realm="hostile-manifests"');
    const denied = await ask(403);
    expect([denied.status, codeOf(denied)]).toEqual([403, 'DENIED']);
    const unknown = await ask(404);
    expect([unknown.status, codeOf(unknown)]).toEqual([404, 'MANIFEST_UNKNOWN']);
  });

  it('429 keeps its Retry-After, GET and HEAD', async () => {
    const limited = await ask(429);
    expect([limited.status, codeOf(limited)]).toEqual([429, 'TOOMANYREQUESTS']);
    expect(limited.headers['retry-after']).toBe('7');
    const head = await ask(429, missing, ['-I']);
    expect(head.status).toBe(429);
    expect(head.headers['retry-after']).toBe('7');
  });

  it.each([500, 502])('%i with nothing cached is 503 UNAVAILABLE, by digest and by tag', async (status) => {
    for (const reference of [missing, 'v1']) {
      const failing = await ask(status, reference);
      expect(failing.status, failing.body.toString()).toBe(503);
      expect(codeOf(failing)).toBe('UNAVAILABLE');
    }
    expect((await ask(status, missing, ['-I'])).status).toBe(503);
  });
});
