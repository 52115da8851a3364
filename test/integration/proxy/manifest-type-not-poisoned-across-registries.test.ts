/**
 * Issue 10, item 7: the first upstream to serve a digest decided its Content-Type for everyone. A
 * hostile registry serving a real image's manifest bytes as `text/html` broke pulls of the same
 * digest from the legitimate registry, through the cache. A manifest's type now comes from its own
 * (digest-verified) bytes; no registry's headers change another's answers.
 *
 * The netns bench: the real distribution registry with the image as registry.test, and
 * test/fixtures/hostile-manifest-registry.mjs as hostile-manifests.test, both intercepted by a
 * Layover process; curl and skopeo are the clients.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST } from '../../bench/bench.js';
import { OCI_MANIFEST } from '../../bench/images.js';
import { MANIFEST_STORED } from '../../../src/proxy/manifest-route.js';
import { curl } from './curl.js';
import { HOSTILE_HOST, startHostileManifestBench } from './hostile-manifest-bench.js';

let bench: Bench;
beforeAll(async () => {
  ({ bench } = await startHostileManifestBench());
}, 120_000);
afterAll(() => bench?.close());

it('a manifest a hostile registry served as text/html first keeps its own type for the legitimate registry', async () => {
  const image = bench.images.oci!;
  const accept = ['-H', `Accept: ${OCI_MANIFEST}`];
  const poisoned = await curl(bench, `https://${HOSTILE_HOST}/v2/html/app/manifests/${image.digest}`, accept);
  expect(poisoned.status).toBe(200);
  expect(poisoned.body.toString()).toBe(image.raw);
  await bench.layover!.waitForLog((l) => l.msg === 'request' && l.registry === HOSTILE_HOST && l.cache === 'miss');
  // The answer goes before the manifest is stored: wait for the store, or the next request may miss.
  await bench.layover!.waitForLog((l) => l.msg === MANIFEST_STORED && l.digest === image.digest);

  // The same digest from the legitimate registry: served from the cache, after the registry showed the
  // manifest's bytes once (the hostile registry gave them first: registry.test's word alone is not taken).
  // Lines of earlier requests (the push) may still be on their way: let them arrive before clearing.
  await bench.registry.sync();
  bench.registry.clearRequests();
  for (const method of [[], ['-I']]) {
    const legitimate = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/manifests/${image.digest}`, [...accept, ...method]);
    expect(legitimate.status).toBe(200);
    expect(legitimate.headers['content-type']).toBe(image.mediaType);
    expect(legitimate.headers['docker-content-digest']).toBe(image.digest);
  }
  await bench.registry.sync();
  const gets = bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/manifests/'));
  expect(gets.map((r) => r.path)).toEqual([`/v2/${image.repository}/manifests/${image.digest}`]);
  const pulled = await bench.pullViaLayover(`${INTERCEPTED_HOST}/${image.repository}@${image.digest}`, join(bench.sandbox.dir, 'legitimate'));
  expect(pulled.code, pulled.stderr).toBe(0);

  // The hostile registry's own clients get the type the bytes declare too: the header never reaches anyone.
  const again = await curl(bench, `https://${HOSTILE_HOST}/v2/html/app/manifests/${image.digest}`, accept);
  expect(again.headers['content-type']).toBe(image.mediaType);
}, 60_000);
