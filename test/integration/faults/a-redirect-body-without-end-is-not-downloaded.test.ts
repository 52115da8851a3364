/**
 * A registry's redirect whose own body never ends: Layover answers the client from the redirect and
 * stops reading that body (it read the rest of an upstream body it dropped for as long as the upstream
 * sent it, holding the connection).
 *
 * The held-upstream fixture (./held-upstream.ts, endless-redirect/...), dnsmasq, Layover in this process.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { type HeldBench, startHeldBench } from './held-upstream.js';

let bench: HeldBench;
beforeAll(async () => {
  bench = await startHeldBench();
}, 60_000);
afterAll(() => bench?.close());

it('the client gets the redirect, and the endless body is cut off', async () => {
  const { digest } = bench.upstream.blob;
  const answer = await bench.ask(`/v2/endless-redirect/app/blobs/${digest}`);
  expect(answer.status).toBe(307);
  expect(answer.headers.location).toMatch(/^https:\/\/docker\.proxy[:/]/);
  const redirect = bench.upstream.seen.find((seen) => seen.url.startsWith('/v2/endless-redirect/'))!;
  await vi.waitFor(() => expect(redirect.closed).toBe(true), { timeout: 5_000 });
});
