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
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { startFixture, type FixtureProcess } from '../../bench/fixture-process.js';
import { OCI_MANIFEST } from '../../bench/images.js';
import { curl } from './curl.js';

const HOSTILE_HOST = 'hostile-manifests.test';
const HOSTILE_ADDRESS = '127.0.0.5';
const FIXTURE = fileURLToPath(new URL('../../fixtures/hostile-manifest-registry.mjs', import.meta.url));

let bench: Bench;
let hostile: FixtureProcess;

beforeAll(async () => {
  bench = await startBench({
    images: ['oci'],
    extraRecords: { [HOSTILE_HOST]: [HOSTILE_ADDRESS] },
    layover: { flags: { registries: `${INTERCEPTED_HOST} ${HOSTILE_HOST}` } },
  });
  const manifestFile = join(bench.sandbox.dir, 'oci-manifest.json');
  writeFileSync(manifestFile, bench.images.oci!.raw);
  const tls = await bench.ca.issue('hostile-manifests', [HOSTILE_HOST, HOSTILE_ADDRESS]);
  hostile = await startFixture(bench.sandbox, FIXTURE, ['--listen', `${HOSTILE_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--manifest', manifestFile]);
  expect(hostile.ready.manifests).toEqual([bench.images.oci!.digest]);
}, 120_000);
afterAll(() => bench?.close());

it('a manifest a hostile registry served as text/html first keeps its own type for the legitimate registry', async () => {
  const image = bench.images.oci!;
  const accept = ['-H', `Accept: ${OCI_MANIFEST}`];
  const poisoned = await curl(bench, `https://${HOSTILE_HOST}/v2/html/app/manifests/${image.digest}`, accept);
  expect(poisoned.status).toBe(200);
  expect(poisoned.body.toString()).toBe(image.raw);
  expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.registry === HOSTILE_HOST && l.cache === 'miss')).toBe(true);

  // The same digest from the legitimate registry: served from the cache (after an access check upstream).
  bench.registry.clearRequests();
  for (const method of [[], ['-I']]) {
    const legitimate = await curl(bench, `https://${INTERCEPTED_HOST}/v2/${image.repository}/manifests/${image.digest}`, [...accept, ...method]);
    expect(legitimate.status).toBe(200);
    expect(legitimate.headers['content-type']).toBe(image.mediaType);
    expect(legitimate.headers['docker-content-digest']).toBe(image.digest);
  }
  await bench.registry.sync();
  expect(bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/manifests/'))).toEqual([]);
  const pulled = await bench.pullViaLayover(`${INTERCEPTED_HOST}/${image.repository}@${image.digest}`, join(bench.sandbox.dir, 'legitimate'));
  expect(pulled.code, pulled.stderr).toBe(0);

  // The hostile registry's own clients get the type the bytes declare too: the header never reaches anyone.
  const again = await curl(bench, `https://${HOSTILE_HOST}/v2/html/app/manifests/${image.digest}`, accept);
  expect(again.headers['content-type']).toBe(image.mediaType);
}, 60_000);
