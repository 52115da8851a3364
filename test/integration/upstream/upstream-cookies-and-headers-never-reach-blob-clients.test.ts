/**
 * Issue 10, item 10: an upstream's `Set-Cookie` never reaches a client, and the client that caused a
 * blob miss gets the same headers as every later client served from the cache (before, the first
 * one got the upstream's `Content-Encoding`, `Set-Cookie`, ETag and anything else it sent); so does a
 * verified manifest's. Headers an upstream names hop-by-hop, in one Connection header or several,
 * pass nowhere. The fixture upstream (faults/held-upstream.ts) sends all of those on every answer.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { type Answer, type HeldBench, HOP_HEADERS, MANIFEST_DIGEST, startHeldBench, UPSTREAM_ONLY_HEADERS } from '../faults/held-upstream.js';

let bench: HeldBench;
beforeAll(async () => {
  bench = await startHeldBench();
}, 60_000);
afterAll(() => bench?.close());

const names = (answer: Answer): string[] => Object.keys(answer.headers).sort();

function expectNoUpstreamOnlyHeaders(answer: Answer): void {
  for (const name of Object.keys(UPSTREAM_ONLY_HEADERS)) if (name !== 'etag') expect(answer.headers[name], name).toBeUndefined();
  expect(answer.headers.etag).not.toBe(UPSTREAM_ONLY_HEADERS.etag);
}

it('a manifest miss and a hit carry the same headers, and none of the upstream-only ones', async () => {
  const { layover } = bench;
  const path = `/v2/ok/app/manifests/${MANIFEST_DIGEST}`;
  const miss = await bench.ask(path);
  await vi.waitFor(() => expect(layover.app.cache.stat(MANIFEST_DIGEST)).toBeDefined());
  const hit = await bench.ask(path);
  expect(layover.logs.filter((line) => line.msg === 'request' && line.url === path).map((line) => line.cache)).toEqual(['miss', 'hit']);
  for (const answer of [miss, hit]) {
    expect(answer.status).toBe(200);
    expectNoUpstreamOnlyHeaders(answer);
    expect(answer.headers).toMatchObject({ 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': MANIFEST_DIGEST });
  }
  expect(names(miss)).toEqual(names(hit));
});

it('a blob miss and a hit carry the same headers, and none of the upstream-only ones', async () => {
  const { upstream, layover } = bench;
  const path = `/v2/ok/app/blobs/${upstream.blob.digest}`;
  const headMiss = await bench.ask(path, { method: 'HEAD' });
  const miss = await bench.ask(path);
  expect(miss.status).toBe(200);
  expect(miss.body.equals(upstream.blob.bytes)).toBe(true);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest)).toBeDefined());
  const hit = await bench.ask(path);
  const headHit = await bench.ask(path, { method: 'HEAD' });
  expect(hit.body.equals(upstream.blob.bytes)).toBe(true);
  expect(layover.logs.filter((line) => line.msg === 'request' && line.url === path).map((line) => line.cache)).toEqual(['pass', 'miss', 'hit', 'hit']);

  for (const answer of [headMiss, miss, hit, headHit]) {
    expect(answer.status).toBe(200);
    expectNoUpstreamOnlyHeaders(answer);
    expect(answer.headers).toMatchObject({ 'content-type': 'application/octet-stream', 'docker-content-digest': upstream.blob.digest, etag: `"${upstream.blob.digest}"`, 'content-length': String(upstream.blob.bytes.length) });
  }
  expect(names(miss)).toEqual(names(hit));
  expect(names(headMiss)).toEqual(names(headHit));
});

it('no upstream cookie on answers passed through either (the ping, a 404), and their upstream body is never a page of Layover\'s origin', async () => {
  const { upstream } = bench;
  const ping = await bench.ask('/v2/');
  expect(ping.status).toBe(200);
  const unknown = await bench.ask(`/v2/ok/app/blobs/sha256:${'0'.repeat(64)}`);
  expect(unknown.status).toBe(404);
  for (const answer of [ping, unknown]) {
    expect(answer.headers['set-cookie']).toBeUndefined();
    // Named hop-by-hop in two Connection headers: neither passes.
    for (const name of Object.keys(HOP_HEADERS)) expect(answer.headers[name], name).toBeUndefined();
    // Whatever Content-Type the upstream claimed: no sniffing, no script, a unique origin.
    expect(answer.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; sandbox" });
  }
  expect(upstream.seen.some((request) => request.url === `/v2/ok/app/blobs/sha256:${'0'.repeat(64)}`)).toBe(true);
});
