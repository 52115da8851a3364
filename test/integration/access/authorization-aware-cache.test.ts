import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { REALM_HOST, startTokenBench, type TokenBench, trustLayoverAndRealm } from '../auth/auth-bench.js';
import { curl, type CurlResult } from '../proxy/curl.js';

// The upstream registry in token mode: bench/* is public (the token server grants anonymous pulls),
// a/* is private to bob; carol may read bench/* only. Layover holds no credentials and lets every
// client in (CLIENT_AUTH=none): the upstream decides who reads what, cached or not (src/access/).
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const BOB = ['bob', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;

let t: TokenBench;
let nested: PushedImage;
let oci: PushedImage;
/** `base` is the same blob in bench/oci (public) and a/b/c (private); `own` only in a/b/c. */
let base: string;
let own: string;
let bothCas: string;

beforeAll(async () => {
  t = await startTokenBench(
    {
      [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } },
      [BOB[0]]: { password: BOB[1], grants: { 'a/': ['pull'] } },
      [CAROL[0]]: { password: CAROL[1], grants: { 'bench/': ['pull'] } },
      '': { password: '', grants: { 'bench/': ['pull'] } },
    },
    { images: ['oci', 'nested'], layover: { env: { ACCESS_CHECK_TTL: '1h' } } },
  );
  nested = t.bench.images.nested!;
  oci = t.bench.images.oci!;
  const nestedLayers = nested.manifests[0]!.layers.map((l) => l.digest);
  const ociLayers = new Set(oci.manifests[0]!.layers.map((l) => l.digest));
  base = nestedLayers.find((d) => ociLayers.has(d))!;
  own = nestedLayers.find((d) => !ociLayers.has(d))!;
  bothCas = join(t.bench.sandbox.dir, 'layover-and-test-ca.pem');
  writeFileSync(bothCas, readFileSync(t.bench.layover!.caFile, 'utf8') + readFileSync(t.bench.ca.certFile, 'utf8'));
}, 180_000);
afterAll(() => t?.bench.close());

const blobUrl = (repository: string, digest: string): string => `https://${INTERCEPTED_HOST}/v2/${repository}/blobs/${digest}`;

/** A token from the real realm for `user` (anonymous without one), as a client would fetch it. */
async function tokenFor(repository: string, user?: readonly [string, string]): Promise<string> {
  const url = `https://${REALM_HOST}/token?service=${INTERCEPTED_HOST}&scope=repository:${repository}:pull`;
  const result = await curl(t.bench, url, ['--cacert', bothCas, ...(user ? ['-u', `${user[0]}:${user[1]}`] : [])]);
  expect(result.status, result.stderr).toBe(200);
  return (JSON.parse(result.body.toString()) as { token: string }).token;
}

const getBlob = async (repository: string, digest: string, token?: string): Promise<CurlResult> =>
  curl(t.bench, blobUrl(repository, digest), token ? ['-H', `Authorization: Bearer ${token}`] : []);

const blobGets = (digest: string): number => t.bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes(digest)).length;

/** The refusal is an OCI error, and not one byte of the blob. */
function expectRefused(result: CurlResult, status: number, code: string): void {
  expect(result.status).toBe(status);
  expect(JSON.parse(result.body.toString())).toMatchObject({ errors: [{ code }] });
  expect(result.headers['docker-content-digest']).toBeUndefined();
  expect(result.headers['content-type']).toMatch(/^application\/json/);
  expect(result.body.length).toBeLessThan(1024);
}

describe('an authorisation-aware cache (CLIENT_AUTH=none, Layover without credentials)', () => {
  it('fills the cache from a private repository with the client’s own credentials', async () => {
    const out = join(t.bench.sandbox.dir, 'bob-nested');
    await t.bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), out, { creds: `${BOB[0]}:${BOB[1]}`, certDir: trustLayoverAndRealm(t.bench) });
    expect(readFileSync(join(out, 'manifest.json'), 'utf8')).toBe(nested.raw);
    expect(blobGets(own)).toBe(1);
  }, 60_000);

  it('refuses the cached private blob to a client without credentials, with the upstream’s challenge', async () => {
    const result = await getBlob(nested.repository, own);
    expectRefused(result, 401, 'UNAUTHORIZED');
    expect(result.headers['www-authenticate']).toMatch(/^Bearer realm=/i);
    // And a whole anonymous pull of the private image fails too.
    const pull = await t.bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), join(t.bench.sandbox.dir, 'anon-nested'), { allowFailure: true, certDir: trustLayoverAndRealm(t.bench) });
    expect(pull.code).not.toBe(0);
    expect(blobGets(own)).toBe(1);
  }, 60_000);

  it('refuses it to a client whose own credentials do not reach the repository', async () => {
    const carols = await tokenFor(nested.repository, CAROL);
    expectRefused(await getBlob(nested.repository, own, carols), 401, 'UNAUTHORIZED');
    const pull = await t.bench.pullViaLayover(nested.ref(INTERCEPTED_HOST), join(t.bench.sandbox.dir, 'carol-nested'), { creds: `${CAROL[0]}:${CAROL[1]}`, allowFailure: true, certDir: trustLayoverAndRealm(t.bench) });
    expect(pull.code).not.toBe(0);
  }, 60_000);

  it('serves it from the cache to a client whose credentials reach it, checked once per repository', async () => {
    const bobs = await tokenFor(nested.repository, BOB);
    const heads = (): number => t.bench.registry.requests().filter((r) => r.method === 'HEAD' && r.path.startsWith(`/v2/${nested.repository}/`)).length;
    const before = heads();
    for (let i = 0; i < 3; i++) {
      const result = await getBlob(nested.repository, own, bobs);
      expect(result.status).toBe(200);
      expect(result.headers['docker-content-digest']).toBe(own);
    }
    expect(heads() - before).toBe(1);
    expect(blobGets(own)).toBe(1);
  }, 60_000);

  it('serves a digest shared with a public repository to anyone asking there, and to nobody under the private name', async () => {
    const gets = blobGets(base);
    const asPublic = await getBlob(oci.repository, base);
    expect(asPublic.status).toBe(200);
    expect(asPublic.headers['docker-content-digest']).toBe(base);
    expect(blobGets(base)).toBe(gets); // from the cache: upstream was only asked whether bench/oci has it
    expectRefused(await getBlob(nested.repository, base), 401, 'UNAUTHORIZED');
    // A digest that exists in neither repository named is refused even to a reader of that repository.
    const carols = await tokenFor(oci.repository, CAROL);
    expectRefused(await getBlob(oci.repository, own, carols), 404, 'BLOB_UNKNOWN');
  }, 60_000);

  it('fails closed while the upstream cannot be asked, and serves what it knows to be public', async () => {
    // A restart on the same data dir: what Layover learnt about the repositories was kept.
    const { dataDir } = t.bench.layover!;
    await t.bench.layover!.stop();
    await t.bench.startLayover({ dataDir, env: { ACCESS_CHECK_TTL: '1s' } });
    const bobs = await tokenFor(nested.repository, BOB);
    await t.bench.registry.stop();
    try {
      const refused = await getBlob(nested.repository, own, bobs);
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
      const publicBlob = await getBlob(oci.repository, base);
      expect(publicBlob.status).toBe(200);
    } finally {
      await t.bench.registry.start();
    }
    expect((await getBlob(nested.repository, own, bobs)).status).toBe(200);
  }, 90_000);

  it('serves it during an outage where ACCESS_CHECK_FAIL_OPEN names the registry', async () => {
    const { dataDir } = t.bench.layover!;
    await t.bench.layover!.stop();
    await t.bench.startLayover({ dataDir, env: { ACCESS_CHECK_FAIL_OPEN: INTERCEPTED_HOST } });
    const bobs = await tokenFor(nested.repository, BOB);
    await t.bench.registry.stop();
    try {
      const served = await getBlob(nested.repository, own, bobs);
      expect(served.status).toBe(200);
      expect(served.headers['docker-content-digest']).toBe(own);
      expect(t.bench.layover!.logs().some((l) => l.msg === 'upstream cannot be asked: serving cached content (ACCESS_CHECK_FAIL_OPEN)')).toBe(true);
    } finally {
      await t.bench.registry.start();
    }
  }, 90_000);
});
