import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import { startRegistry, type Registry } from '../../bench/registry.js';
import { skopeo } from '../../bench/skopeo.js';
import { dirContents } from './dir-compare.js';

// A second real registry that listens on 5000 only. Layover intercepts `ported.test:5000`: it
// answers the name in DNS and listens on 5000 too, so a client that was told the port reaches it.
const PORTED = 'ported.test';
let bench: Bench;
let ported: Registry;
beforeAll(async () => {
  bench = await startBench({
    images: ['oci'],
    extraRecords: { [PORTED]: ['127.0.0.6'] },
    layover: { flags: { registries: `${INTERCEPTED_HOST} ${PORTED}:5000` } },
  });
  ported = await startRegistry(bench.sandbox, bench.ca, { address: '127.0.0.6', port: 5000, names: [PORTED] });
  const image = bench.images.oci!;
  // Seed it straight from the first registry, bypassing Layover's DNS.
  await skopeo(bench.sandbox, [
    'copy', '--src-cert-dir', bench.ca.trustDir, '--dest-cert-dir', bench.ca.trustDir,
    `docker://${image.ref('registry-direct.test')}`, `docker://${PORTED}:5000/${image.repository}:${image.tag}`,
  ], { resolvConf: bench.resolver.resolvConf });
  ported.clearRequests();
}, 180_000);
afterAll(() => bench?.close());

it('pulls from a registry on port 5000 through Layover listening on 5000, then from the cache', async () => {
  const image = bench.images.oci!;
  const ref = `${PORTED}:5000/${image.repository}:${image.tag}`;
  const via = join(bench.sandbox.dir, 'ported-via');
  await bench.pullViaLayover(ref, via);
  const direct = join(bench.sandbox.dir, 'ported-direct');
  await bench.pullDirect(image.ref('registry-direct.test'), direct);
  expect(dirContents(via)).toEqual(dirContents(direct));
  await ported.sync();
  expect(ported.requests().some((r) => r.path.includes('/blobs/'))).toBe(true);
  const lines = bench.layover!.logs().filter((l) => l.msg === 'request' && l.host === `${PORTED}:5000`);
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.every((l) => l.registry === `${PORTED}:5000`)).toBe(true);

  ported.clearRequests();
  await bench.pullViaLayover(ref, join(bench.sandbox.dir, 'ported-again'));
  await ported.sync();
  expect(ported.requests().filter((r) => r.path.includes('/blobs/'))).toEqual([]);
}, 120_000);
