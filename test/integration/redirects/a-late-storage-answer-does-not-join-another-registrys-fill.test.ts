/**
 * A download (from storage, or a registry's own 200) that finds, when its answer comes, a fill of the
 * digest another registry's download started meanwhile (its pending slot was let go: a client of that
 * registry left while its storage was asked, REDIRECTS=follow) is not given that fill's bytes: the
 * registry it came from must hold them, or show them, as for any cached copy. Before, it joined the
 * fill, and a registry that held nothing got another registry's (private) blob.
 *
 * The redirecting bench (./redirecting-bench.ts): real Layover, DNS, TLS and curl in a sandbox; the
 * fixture registry's `slow` mode and storage paths that answer late (`/slow/`, `/garbage/`).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { fixtureBlob, type RedirectingBench, REDIRECTING_HOST, startRedirectingBench, STORAGE_HOST } from './redirecting-bench.js';

let rb: RedirectingBench;
beforeAll(async () => {
  // storage.test (the fixture's storage listener) is also a registry here: one that lies.
  rb = await startRedirectingBench({ redirects: 'follow', registries: `${INTERCEPTED_HOST} ${REDIRECTING_HOST} ${STORAGE_HOST}` });
}, 120_000);
afterAll(() => rb?.bench.close());

it('a late storage answer for another registry does not join the fill of the first', async () => {
  const blob = fixtureBlob(2);
  // A client of redirecting.test gives up while its storage still waits: its download goes on and becomes the fill.
  await rb.get(rb.blobUrl('slow', blob.digest), ['--max-time', '0.5']);
  // Meanwhile, a URL signed for another registry, whose storage sends other bytes, and later than the first.
  const other = rb.sign({ digest: blob.digest, registry: INTERCEPTED_HOST, repo: 'team/app', target: `https://${STORAGE_HOST}/garbage/${blob.digest}?wait=2500`, expires: Math.floor(Date.now() / 1000) + 300 });
  const answer = await rb.get(other, ['--max-time', '30']);
  expect(answer.body.equals(blob.bytes)).toBe(false);
  expect(answer.status).toBe(502);
  await rb.syncFixture();
  // The first download did become the fill (else nothing here was tested).
  expect(rb.requestsFor(blob.digest).some((r) => r.path === `/slow/${blob.digest}`)).toBe(true);
  // Asked again, the storage that showed other bytes is refused from memory: each try would be one more guess at a window.
  const samples = (): number => rb.requestsFor(blob.digest).filter((r) => r.path === `/garbage/${blob.digest}`).length;
  const before = samples();
  const again = await rb.get(other, ['--max-time', '30']);
  expect(again.status).toBe(502);
  await rb.syncFixture();
  expect(samples()).toBe(before);
});

it('nor does a late answer of another registry itself', async () => {
  const blob = fixtureBlob(3);
  await rb.get(rb.blobUrl('slow', blob.digest), ['--max-time', '0.5']);
  // The lying registry answers 200 with other bytes, after the first download has become the fill.
  const answer = await rb.get(`https://${STORAGE_HOST}/v2/garbage/blobs/${blob.digest}`, ['--max-time', '30']);
  expect(answer.body.equals(blob.bytes)).toBe(false);
  expect(answer.status).toBeGreaterThanOrEqual(400);
  await rb.syncFixture();
  expect(rb.requestsFor(blob.digest).some((r) => r.path === `/slow/${blob.digest}`)).toBe(true);
  // A storage URL that shows nothing (expired, gone) is refused but not remembered against the registry:
  // a good URL for the same digest is served right after.
  const signed = (target: string): string => rb.sign({ digest: blob.digest, registry: INTERCEPTED_HOST, repo: 'team/app', target, expires: Math.floor(Date.now() / 1000) + 300 });
  expect((await rb.get(signed(`https://${STORAGE_HOST}/expired/${blob.digest}`))).status).toBe(502);
  const good = await rb.get(signed(`https://${STORAGE_HOST}/final/${blob.digest}`));
  expect(good.status).toBe(200);
  expect(good.body.equals(blob.bytes)).toBe(true);
});

