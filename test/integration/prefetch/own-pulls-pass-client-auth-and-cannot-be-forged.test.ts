/**
 * Issue 12, prefetch with client authentication on: Layover's own pulls (run in process through the
 * TLS listener's routes) must pass the client-auth hook, or every prefetch fails with 401. They
 * carry a per-process credential that no socket ever carried; a client presenting that scheme with
 * any guess is refused like any wrong credential. Real parts: `layover serve` with an htpasswd file
 * (bcrypt, from htpasswd -B), the distribution registry, curl and skopeo inside the sandbox.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { runPrefetch, upstreamBlobGets } from './prefetch-bench.js';

let bench: Bench;
let oci: PushedImage;
beforeAll(async () => {
  bench = await startBench({ images: ['oci'], seed: 'prefetch-client-auth', layover: false });
  oci = bench.images.oci!;
  const htpasswd = join(bench.sandbox.dir, 'clients.htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', 'alice', 'wonderland'], { encoding: 'utf8' }));
  await bench.startLayover({ env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd } });
  await bench.registry.sync();
  bench.registry.clearRequests();
}, 180_000);
afterAll(() => bench?.close());

const layerUrl = (): string => `https://${INTERCEPTED_HOST}/v2/${oci.repository}/blobs/${oci.manifests[0]!.layers[1]!.digest}`;
const curlStatus = async (authorization: string | null): Promise<string> =>
  (await bench.sandbox.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', bench.layover!.caFile, ...(authorization ? ['-H', `authorization: ${authorization}`] : []), layerUrl()])).stdout;

it('layover prefetch works with client authentication on, and an authenticated pull then makes 0 upstream blob GETs', async () => {
  const result = await runPrefetch(bench, [oci.ref(INTERCEPTED_HOST)]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect((await upstreamBlobGets(bench)).sort()).toEqual(oci.blobs.map((b) => b.digest).sort());

  bench.registry.clearRequests();
  await bench.pullViaLayover(oci.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'alice-pull'), { creds: 'alice:wonderland' });
  expect(await upstreamBlobGets(bench)).toEqual([]);
  const own = bench.layover!.logs().filter((l) => l.msg === 'request' && l.user === 'layover (prefetch)');
  expect(own.length).toBeGreaterThan(0);
}, 180_000);

it('a client presenting the own-pull scheme with a guessed credential is refused like any wrong credential', async () => {
  expect(await curlStatus(null)).toBe('401');
  for (const guess of [randomBytes(32).toString('base64url'), '', 'x'.repeat(43)]) {
    expect(await curlStatus(`Layover-Own-Pull ${guess}`), guess).toBe('401');
  }
  expect(await curlStatus(`Basic ${Buffer.from('alice:wonderland').toString('base64')}`)).toBe('200');
}, 60_000);
