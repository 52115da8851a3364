/**
 * A registry's word that it holds a digest is taken only about digests it gave Layover: any other
 * registry must show the bytes (a random window by Range, the whole manifest) before the cached copy
 * is served under it. Otherwise an intercepted registry that says yes to every HEAD would get any
 * digest another registry's credentials cached, by its digest alone.
 *
 * The netns bench: the real distribution registry as registry.test and, as another upstream, as
 * registry-direct.test; test/fixtures/hostile-manifest-registry.mjs as hostile-manifests.test, whose
 * `liar` repositories claim every digest (a fixture: no real registry lies). curl is the client.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, DIRECT_HOST, INTERCEPTED_HOST } from '../../bench/bench.js';
import type { FixtureProcess } from '../../bench/fixture-process.js';
import { OCI_MANIFEST } from '../../bench/images.js';
import { curl } from '../proxy/curl.js';
import { HOSTILE_HOST, startHostileManifestBench } from '../proxy/hostile-manifest-bench.js';

let bench: Bench;
let hostile: FixtureProcess;
beforeAll(async () => {
  ({ bench, hostile } = await startHostileManifestBench({ registries: [DIRECT_HOST] }));
}, 120_000);
afterAll(() => bench?.close());

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const errorCode = (body: Buffer): unknown => (JSON.parse(body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;

describe('a registry must show the bytes of a digest it never gave Layover', () => {
  it('caches the image from registry.test', async () => {
    const image = bench.images.oci!;
    const manifest = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/manifests/${image.digest}`, ['-H', `Accept: ${OCI_MANIFEST}`]);
    expect(manifest.status).toBe(200);
    const layer = image.manifests[0]!.layers[0]!.digest;
    const fetched = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/blobs/${layer}`);
    expect(sha256(fetched.body)).toBe(layer);
    await bench.layover!.waitForLog((l) => l.msg === 'request' && l.digest === layer && l.cache === 'miss');
  });

  it('does not serve the cached blob or manifest to a registry that claims them and sends other bytes', async () => {
    const image = bench.images.oci!;
    const layer = image.manifests[0]!.layers[0]!.digest;
    const blob = await curl(bench, `https://${HOSTILE_HOST}/v2/liar/app/blobs/${layer}`);
    expect(blob.status).toBe(404);
    expect(errorCode(blob.body)).toBe('BLOB_UNKNOWN');
    const manifest = await curl(bench, `https://${HOSTILE_HOST}/v2/liar/app/manifests/${image.digest}`, ['-H', `Accept: ${OCI_MANIFEST}`]);
    expect(manifest.status).toBe(404);
    expect(errorCode(manifest.body)).toBe('MANIFEST_UNKNOWN');
    // It was asked to show a window of the blob, not believed on a HEAD.
    const asked = hostile.requests().filter((r) => String(r.path).includes(layer));
    expect(asked).toEqual([{ method: 'GET', path: `/v2/liar/app/blobs/${layer}`, range: expect.stringMatching(/^bytes=\d+-\d+$/) }]);
    await bench.layover!.waitForLog((l) => /could not show its bytes/.test(String(l.msg)) && l.registry === HOSTILE_HOST);
  });

  it('serves the cached blob to another registry once it shows a window of the bytes, then on its word', async () => {
    const image = bench.images.oci!;
    const layer = image.manifests[0]!.layers[0]!.digest;
    await bench.registry.sync();
    bench.registry.clearRequests();
    for (const repository of [image.repository, image.repository]) {
      const result = await curl(bench, `https://${DIRECT_HOST}/v2/${repository}/blobs/${layer}`);
      expect(result.status).toBe(200);
      expect(sha256(result.body)).toBe(layer);
    }
    await bench.registry.sync();
    // One ranged GET (a 206 of at most 4 KiB): the bytes came from the cache.
    const gets = bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes(layer));
    expect(gets.map((r) => [r.status, r.bytes <= 4096])).toEqual([[206, true]]);
    expect(bench.layover!.logs().filter((l) => l.msg === 'request' && l.registry === DIRECT_HOST && l.digest === layer).map((l) => l.cache)).toEqual(['hit', 'hit']);
  });

  it('does not serve a cached blob through a docker.proxy URL a lying registry had Layover sign before it was cached', async () => {
    const image = bench.images.oci!;
    const own = image.manifests[0]!.layers[1]!.digest;
    // Asked of the liar first: its redirect becomes a signed docker.proxy URL (REDIRECTS=rewrite), kept, not followed.
    const redirected = await curl(bench, `https://${HOSTILE_HOST}/v2/liar-redirect/app/blobs/${own}`);
    expect(redirected.status).toBe(307);
    const signed = redirected.headers.location!;
    expect(signed).toMatch(/^https:\/\/docker\.proxy\//);
    // The real registry's blob is cached since.
    const fetched = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/blobs/${own}`);
    expect(sha256(fetched.body)).toBe(own);
    await bench.layover!.waitForLog((l) => l.msg === 'request' && l.digest === own && l.cache === 'miss');
    const leaked = await curl(bench, signed);
    expect(leaked.status).toBe(502);
    expect(errorCode(leaked.body)).toBe('DIGEST_INVALID');
    expect(sha256(leaked.body)).not.toBe(own);
  });
});
