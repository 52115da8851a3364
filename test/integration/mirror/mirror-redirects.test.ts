import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureBlob, REDIRECTING_HOST, type RedirectingBench, startRedirectingBench } from '../redirects/redirecting-bench.js';

// REDIRECTS=rewrite (the default) sends clients of a registry name to a signed docker.proxy URL;
// a mirror client may not resolve docker.proxy, so for it Layover follows the storage redirect
// itself, relative Locations included (resolved against the upstream path, not the client's).
let rb: RedirectingBench;
beforeAll(async () => {
  rb = await startRedirectingBench();
}, 120_000);
afterAll(() => rb?.bench.close());

describe('storage redirects in mirror mode', () => {
  it('(control) a client of the registry name gets the docker.proxy redirect', async () => {
    const blob = fixtureBlob(2);
    const result = await rb.get(rb.blobUrl('chain', blob.digest));
    expect(result.status).toBe(307);
    expect(result.headers.location).toMatch(/^https:\/\/docker\.proxy\//);
  });

  it.each([
    ['containerd (?ns=)', (digest: string) => `https://127.0.0.1/v2/chain/blobs/${digest}?ns=${REDIRECTING_HOST}`, 3],
    ['podman (path prefix), a relative redirect', (digest: string) => `https://127.0.0.1/v2/${REDIRECTING_HOST}/relative/blobs/${digest}`, 4],
    ['podman (path prefix), a chain of two', (digest: string) => `https://docker.proxy/v2/${REDIRECTING_HOST}/chain/blobs/${digest}`, 5],
  ])('%s: Layover follows and the client gets the blob', async (_client, url, i) => {
    const blob = fixtureBlob(i);
    const result = await rb.get(url(blob.digest));
    expect(result.status).toBe(200);
    expect(result.body.equals(blob.bytes)).toBe(true);
    // The request line is written when the response has finished: wait for it rather than race it.
    const line = await rb.bench.layover!.waitForLog((l) => l.msg === 'request' && String(l.url).includes(blob.digest));
    expect(line).toMatchObject({ redirect: 'follow', registry: REDIRECTING_HOST, cache: 'miss' });
  });
});
