import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { startTokenBench, type TokenBench } from '../auth/auth-bench.js';
import { runPrefetch, upstreamBlobGets } from './prefetch-bench.js';

// Without client authentication, Layover's own pulls carry no credential of a client: for a registry
// in token mode that Layover holds none for either (Docker Hub, ghcr.io without AUTH_REGISTRIES),
// they must get Layover's anonymous token, or a public image cannot be prefetched. The token server
// gives anonymous pulls of bench/*.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
let t: TokenBench;
beforeAll(async () => {
  t = await startTokenBench(
    { [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } }, '': { password: '', grants: { 'bench/': ['pull'] } } },
    { images: ['oci'], seed: 'prefetch-anonymous-token' },
  );
}, 180_000);
afterAll(() => t?.bench.close());

it('prefetches a public image of a registry in token mode with an anonymous token of its own', async () => {
  const oci = t.bench.images.oci!;
  await t.bench.registry.sync();
  t.bench.registry.clearRequests();
  const result = await runPrefetch(t.bench, [oci.ref(INTERCEPTED_HOST)]);
  expect(result.code, result.stderr).toBe(0);
  expect((await upstreamBlobGets(t.bench)).sort()).toEqual(oci.blobs.map((b) => b.digest).sort());
  const ours = t.tokenRequests().filter((line) => line.agent === 'layover');
  expect(ours.length).toBeGreaterThan(0);
  expect(ours.every((line) => line.account === '')).toBe(true);
}, 180_000);
