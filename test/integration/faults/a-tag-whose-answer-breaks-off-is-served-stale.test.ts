/**
 * A tag's manifest is served from its last answer when the upstream fails (unreachable, 5xx, 429), and
 * also when the upstream's 200 breaks off before the body has ended (cut, silent, or past the deadline of
 * a body read whole): a pull goes on as through an outage, instead of a 500.
 *
 * The held-upstream fixture (./held-upstream.ts: a manifest body held one byte short, then cut), dnsmasq,
 * Layover in this process.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { tagRecordKey } from '../../../src/proxy/manifest-route.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { type Answer, HELD_HOST, type HeldBench, MANIFEST_DIGEST, startHeldBench } from './held-upstream.js';

let bench: HeldBench;
beforeAll(async () => {
  // A short read timeout: an answer gone silent ends within the test.
  bench = await startHeldBench({ 'proxy-read-timeout': '1s' });
}, 60_000);
afterAll(() => bench?.close());

/** Asks for `path` while the upstream's manifest answers stop one byte short, and cuts the answer there. */
async function askCutOff(path: string): Promise<Answer> {
  bench.upstream.holdManifestBodies();
  const asked = bench.ask(path);
  await bench.upstream.held(1);
  bench.upstream.cut();
  return asked;
}

it('a tag whose upstream answer is cut off mid-body gets the cached manifest, logged stale', async () => {
  const first = await bench.ask('/v2/ok/app/manifests/v1');
  expect(first.status).toBe(200);
  const manifest = first.body;
  // The answer goes first; the tag's record is written after it.
  const record = tagRecordKey(`${HELD_HOST}:${bench.upstream.port}`, 'ok/app' as RepositoryName, 'v1', undefined);
  await vi.waitFor(() => expect(bench.layover.app.cache.getRecord(record)).toMatchObject({ digest: MANIFEST_DIGEST }));
  const answer = await askCutOff('/v2/ok/app/manifests/v1');
  expect(answer.status).toBe(200);
  expect(answer.body.equals(manifest)).toBe(true);
  expect(answer.headers['docker-content-digest']).toBe(MANIFEST_DIGEST);
  expect(bench.layover.logs.some((line) => line.msg === 'upstream failed: serving the cached manifest')).toBe(true);
});

it('without a cached copy, the cut-off answer is a 502 in the OCI format, not an internal error', async () => {
  const answer = await askCutOff('/v2/ok/other/manifests/v1');
  expect(answer.status).toBe(502);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  expect(bench.layover.logs.some((line) => line.msg === 'unhandled error')).toBe(false);
});

it('without a cached copy, an answer gone silent mid-body is a 504, as for one that never began', async () => {
  bench.upstream.holdManifestBodies();
  const answer = await bench.ask('/v2/ok/silent/manifests/v1');
  bench.upstream.release();
  expect(answer.status).toBe(504);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
});
