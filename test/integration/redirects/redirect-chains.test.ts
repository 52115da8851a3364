/**
 * Storage redirects as registries send them, through the real Layover process: a relative
 * `Location` (Google Artifact Registry), a chain of two hops (registry -> storage host -> relative
 * path), an endless chain, and a redirect to bytes that do not match the digest. With
 * REDIRECTS=rewrite the client is sent to a signed docker.proxy URL, which Layover serves and
 * caches; with REDIRECTS=follow the client sees a plain 200. The redirect itself is never cached,
 * the registry's Authorization never reaches a storage host, and no storage signature is logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STORAGE_HOPS } from '../../../src/proxy/redirects/storage-fetch.js';
import { BLOB_SIZE, fixtureBlob, ociError, REDIRECTING_HOST, type RedirectingBench, startRedirectingBench, STORAGE_HOST } from './redirecting-bench.js';

let rb: RedirectingBench;
beforeAll(async () => {
  rb = await startRedirectingBench();
}, 120_000);
afterAll(() => rb?.bench.close());

const AUTH = ['-H', 'Authorization: Bearer client-registry-token'];
const SECRETS = ['chain-secret-signature', 'final-secret-signature', 'relative-secret-token', 'client-registry-token'];
const committed = (digest: string) => rb.bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === digest, 20_000);

describe('REDIRECTS=rewrite (the default)', () => {
  it('sends the client to a signed docker.proxy URL, which follows two hops, fills the cache, and then the blob is a plain hit', async () => {
    const blob = fixtureBlob(0);
    const first = await rb.get(rb.blobUrl('chain', blob.digest), AUTH);
    expect(first.status, first.stderr).toBe(307);
    const location = first.headers.location ?? '';
    expect(location.startsWith(`https://docker.proxy/layover/blobs/${blob.digest}?`)).toBe(true);
    expect(first.headers['cache-control']).toBe('no-store');
    expect(location).not.toContain(STORAGE_HOST);

    const followed = await rb.get(location);
    expect(followed.status, followed.stderr).toBe(200);
    expect(followed.headers['docker-content-digest']).toBe(blob.digest);
    expect(followed.body.equals(blob.bytes)).toBe(true);
    await committed(blob.digest);
    const ranged = await rb.get(location, ['-r', '10-19']);
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(blob.bytes.subarray(10, 20))).toBe(true);

    const again = await rb.get(rb.blobUrl('chain', blob.digest), AUTH);
    expect(again.status).toBe(200);
    expect(again.body.equals(blob.bytes)).toBe(true);
    await rb.syncFixture();
    const seen = rb.requestsFor(blob.digest).map((r) => `${r.method} ${r.host} ${r.path} auth=${r.authorization}`);
    expect(seen.filter((line) => line.startsWith('GET'))).toEqual([
      `GET ${REDIRECTING_HOST} /v2/chain/blobs/${blob.digest} auth=true`,
      `GET ${STORAGE_HOST} /hop/${blob.digest} auth=false`,
      `GET ${STORAGE_HOST} /final/${blob.digest} auth=false`,
    ]);
    // Layover's own anonymous HEAD, once: does this repository need credentials (src/access/)?
    expect(seen.filter((line) => line.startsWith('HEAD'))).toEqual([`HEAD ${REDIRECTING_HOST} /v2/chain/blobs/${blob.digest} auth=false`]);
  });

  it('answers through docker.proxy with the headers of every blob answer, miss and hit alike, and no storage cookie', async () => {
    const blob = fixtureBlob(12);
    const location = (await rb.get(rb.blobUrl('chain', blob.digest), AUTH)).headers.location ?? '';
    const miss = await rb.get(location);
    expect(miss.status, miss.stderr).toBe(200);
    await committed(blob.digest);
    const hit = await rb.get(location);
    expect(hit.status).toBe(200);
    for (const answer of [miss, hit]) {
      expect(answer.body.equals(blob.bytes)).toBe(true);
      expect(answer.headers['content-type']).toBe('application/octet-stream');
      expect(answer.headers['set-cookie']).toBeUndefined();
      expect(answer.headers.etag).toBe(`"${blob.digest}"`);
    }
    const names = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => !['date', 'connection', 'keep-alive'].includes(name)).sort();
    expect(names(miss.headers)).toEqual(names(hit.headers));
    const outside = await rb.get(location, ['-r', `${BLOB_SIZE}-${BLOB_SIZE + 10}`]);
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe(`bytes */${BLOB_SIZE}`);
    expect(ociError(outside).code).toBe('RANGE_INVALID');
  });

  it('resolves a relative Location against the registry URL, on the registry host itself', async () => {
    const blob = fixtureBlob(1);
    const result = await rb.get(rb.blobUrl('relative', blob.digest), ['-L', ...AUTH]);
    expect(result.status, result.stderr).toBe(200);
    expect(result.body.equals(blob.bytes)).toBe(true);
    await rb.syncFixture();
    // GETs only: the anonymous HEAD with which Layover learns whether the repository is public comes and goes in the background.
    expect(rb.requestsFor(blob.digest).filter((r) => r.method === 'GET').map((r) => `${r.local} ${r.path} auth=${r.authorization}`)).toEqual([
      `127.0.0.6:443 /v2/relative/blobs/${blob.digest} auth=true`,
      `127.0.0.6:443 /artifacts-downloads/${blob.digest} auth=false`,
    ]);
  });

  it('redirects a HEAD to docker.proxy too, which asks the storage host with HEADs and caches nothing', async () => {
    const blob = fixtureBlob(9);
    const head = await rb.get(rb.blobUrl('chain', blob.digest), ['--head', '-L']);
    expect(head.status, head.stderr).toBe(200);
    expect(head.headers['content-length']).toBe(String(BLOB_SIZE));
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).map((r) => `${r.method} ${r.path}`)).toEqual([
      `HEAD /v2/chain/blobs/${blob.digest}`,
      `HEAD /hop/${blob.digest}`,
      `HEAD /final/${blob.digest}`,
    ]);
  });

  it('never caches the redirect: a client that does not follow it leaves the next request to ask the registry again', async () => {
    const blob = fixtureBlob(2);
    const one = await rb.get(rb.blobUrl('relative', blob.digest));
    const two = await rb.get(rb.blobUrl('relative', blob.digest));
    expect([one.status, two.status]).toEqual([307, 307]);
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).map((r) => r.path)).toEqual([`/v2/relative/blobs/${blob.digest}`, `/v2/relative/blobs/${blob.digest}`]);
  });

  it('does not cache bytes that do not match the digest', async () => {
    // Its redirect leads to blob 0's bytes (the fixture's next blob, wrapping around).
    const blob = fixtureBlob(11);
    const dropped = rb.bench.layover!.waitForLog((l) => l.msg === 'cache fill dropped' && l.digest === blob.digest, 20_000);
    const result = await rb.get(rb.blobUrl('wrong', blob.digest), ['-L']);
    expect(result.code === 0 && result.status === 200 && result.body.length === BLOB_SIZE).toBe(false);
    expect((await dropped).reason).toBe('digest-mismatch');
    const again = await rb.get(rb.blobUrl('wrong', blob.digest));
    expect(again.status).toBe(307);
  });

  it('logs no storage signature, no signed query and no client token', async () => {
    const text = rb.layoverText();
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    const docker = rb.requestLines().filter((l) => l.host === 'docker.proxy');
    expect(docker.length).toBeGreaterThan(0);
    for (const line of docker) {
      expect(String(line.url)).toMatch(/target=\[redacted\]/);
      expect(String(line.url)).toMatch(/sig=\[redacted\]/);
    }
  });
});

describe('REDIRECTS=follow', () => {
  beforeAll(() => rb.restartLayover({ redirects: 'follow' }), 60_000);

  it('follows a chain of two hops itself: the client gets a 200 and never a redirect', async () => {
    const blob = fixtureBlob(4);
    const result = await rb.get(rb.blobUrl('chain', blob.digest), AUTH);
    expect(result.status, result.stderr).toBe(200);
    expect(result.body.equals(blob.bytes)).toBe(true);
    await committed(blob.digest);
    const hit = await rb.get(rb.blobUrl('chain', blob.digest));
    expect(hit.status).toBe(200);
    expect(hit.body.equals(blob.bytes)).toBe(true);
    await rb.syncFixture();
    const seen = rb.requestsFor(blob.digest).map((r) => `${r.method} ${r.host} ${r.path} auth=${r.authorization}`);
    expect(seen.filter((line) => line.startsWith('GET'))).toEqual([
      `GET ${REDIRECTING_HOST} /v2/chain/blobs/${blob.digest} auth=true`,
      `GET ${STORAGE_HOST} /hop/${blob.digest} auth=false`,
      `GET ${STORAGE_HOST} /final/${blob.digest} auth=false`,
    ]);
    // The hit is for a client without credentials: Layover asks once whether the repository is public.
    expect(seen.filter((line) => line.startsWith('HEAD'))).toEqual([`HEAD ${REDIRECTING_HOST} /v2/chain/blobs/${blob.digest} auth=false`]);
    // Logged when each response has finished: wait for the last one before looking for redirects.
    await rb.bench.layover!.waitForLog((l) => l.msg === 'request' && l.digest === blob.digest && l.cache === 'hit');
    expect(rb.requestLines().filter((l) => Number(l.status) >= 300 && Number(l.status) < 400)).toEqual([]);
  });

  it('follows a relative Location', async () => {
    const blob = fixtureBlob(5);
    const result = await rb.get(rb.blobUrl('relative', blob.digest));
    expect(result.status, result.stderr).toBe(200);
    expect(result.body.equals(blob.bytes)).toBe(true);
  });

  it('answers a HEAD by following the chain with HEADs, and caches nothing', async () => {
    const blob = fixtureBlob(6);
    const head = await rb.get(rb.blobUrl('chain', blob.digest), ['--head']);
    expect(head.status, head.stderr).toBe(200);
    expect(head.headers['content-length']).toBe(String(BLOB_SIZE));
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).map((r) => `${r.method} ${r.path}`)).toEqual([
      `HEAD /v2/chain/blobs/${blob.digest}`,
      `HEAD /hop/${blob.digest}`,
      `HEAD /final/${blob.digest}`,
    ]);
  });

  it(`gives up after ${MAX_STORAGE_HOPS} redirects with a 502`, async () => {
    const blob = fixtureBlob(7);
    const result = await rb.get(rb.blobUrl('loop', blob.digest));
    expect(result.status).toBe(502);
    expect(ociError(result)).toMatchObject({ code: 'UNAVAILABLE', detail: { reason: 'hops' } });
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).filter((r) => String(r.path).startsWith('/loop/'))).toHaveLength(MAX_STORAGE_HOPS + 1);
  });

  it('refuses a redirect to another name at the registry’s own address: the exception is for the registry itself', async () => {
    const blob = fixtureBlob(10);
    const result = await rb.get(rb.blobUrl('alias', blob.digest));
    expect(result.status).toBe(403);
    expect(ociError(result)).toMatchObject({ code: 'DENIED', detail: { reason: 'refused' } });
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).map((r) => r.host)).toEqual([REDIRECTING_HOST]);
  });

  it('refuses a redirect to Layover’s own loopback address, and sends nothing there', async () => {
    const blob = fixtureBlob(8);
    const result = await rb.get(rb.blobUrl('private', blob.digest));
    expect(result.status).toBe(403);
    expect(ociError(result)).toMatchObject({ code: 'DENIED', detail: { reason: 'refused' } });
    await rb.syncFixture();
    expect(rb.requestsFor(blob.digest).map((r) => r.local)).toEqual(['127.0.0.6:443']);
  });
});
