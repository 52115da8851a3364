import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import { startRegistry, type Registry } from '../../bench/registry.js';
import { skopeo } from '../../bench/skopeo.js';
import { dirContents } from './dir-compare.js';

// Two real registries on one host name, at ports 5000 and 5001, each with its own image under the
// same repository and tag (a registry host whose ports belong to different tenants or uses).
// Layover intercepts both ports: a tag cached from one must never answer a client of the other,
// and a blob one of them gave must be shown by the other before its clients get it.
const PORTED = 'ported.test';
const REPOSITORY = 'shared/app';
const TAG = 'v1';
let bench: Bench;
const ported: Record<5000 | 5001, Registry> = {} as Record<5000 | 5001, Registry>;
const ref = (port: 5000 | 5001): string => `${PORTED}:${port}/${REPOSITORY}:${TAG}`;

beforeAll(async () => {
  bench = await startBench({
    images: ['oci', 'docker'],
    extraRecords: { [PORTED]: ['127.0.0.6'] },
    layover: { flags: { registries: `${INTERCEPTED_HOST} ${PORTED}:5000 ${PORTED}:5001` }, env: { ENABLE_MANIFEST_CACHE: 'true' } },
  });
  const seeds = { 5000: bench.images.oci!, 5001: bench.images.docker! } as const;
  for (const port of [5000, 5001] as const) {
    ported[port] = await startRegistry(bench.sandbox, bench.ca, { address: '127.0.0.6', port, names: [PORTED] });
    // Seeded straight from the first registry, bypassing Layover's DNS.
    await skopeo(bench.sandbox, [
      'copy', '--src-cert-dir', bench.ca.trustDir, '--dest-cert-dir', bench.ca.trustDir,
      `docker://${seeds[port].ref('registry-direct.test')}`, `docker://${ref(port)}`,
    ], { resolvConf: bench.resolver.resolvConf });
    await ported[port].sync();
    ported[port].clearRequests();
  }
}, 180_000);
afterAll(() => bench?.close());

it('keeps the tags of two ports of one host apart, and has the second port show a blob the first gave', async () => {
  const expected = { 5000: join(bench.sandbox.dir, 'direct-oci'), 5001: join(bench.sandbox.dir, 'direct-docker') };
  await bench.pullDirect(bench.images.oci!.ref('registry-direct.test'), expected[5000]);
  await bench.pullDirect(bench.images.docker!.ref('registry-direct.test'), expected[5001]);

  const first = join(bench.sandbox.dir, 'via-5000');
  await bench.pullViaLayover(ref(5000), first);
  expect(dirContents(first)).toEqual(dirContents(expected[5000]));

  // Same host, repository and tag, other port: its own image, not the one cached from 5000.
  const second = join(bench.sandbox.dir, 'via-5001');
  await bench.pullViaLayover(ref(5001), second);
  expect(dirContents(second)).toEqual(dirContents(expected[5001]));

  // The base layer is in both images and was cached from 5000: 5001 had to show its bytes (a ranged GET).
  const base = bench.images.oci!.blobs.find((blob) => bench.images.docker!.blobs.some((other) => other.digest === blob.digest));
  expect(base).toBeDefined();
  await ported[5001].sync();
  expect(ported[5001].requests().filter((r) => r.method === 'GET' && r.path.includes(base!.digest)).map((r) => r.status)).toContain(206);

  // And each port keeps answering with its own image, from the cache: no blob or manifest GET upstream.
  for (const port of [5000, 5001] as const) {
    await ported[port].sync();
    ported[port].clearRequests();
    const again = join(bench.sandbox.dir, `via-${port}-again`);
    await bench.pullViaLayover(ref(port), again);
    expect(dirContents(again)).toEqual(dirContents(expected[port]));
    await ported[port].sync();
    const fetched = ported[port].requests().filter((r) => r.method === 'GET' && /\/(manifests|blobs)\//.test(r.path));
    expect(fetched.map((r) => `${port} ${r.path} ${r.status}`)).toEqual([]);
  }
}, 180_000);
