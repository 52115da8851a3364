/**
 * An HTTP/1.0 client of a docker.proxy download without Content-Length waits for its verification
 * and is then served from the cache. When that download breaks off instead, whatever copy the cache
 * holds by then (another registry's, cached meanwhile) is not that download's: the request is decided
 * again, the access check with it (src/access/: a registry must show bytes it never gave).
 *
 * The held-upstream fixture (chunked-redirect: its storage answers without Content-Length), dnsmasq,
 * Layover in this process; real curl over HTTP/1.0 (./http10-held-bench.ts).
 */
import { expect, it } from 'vitest';
import { HELD_HOST } from './held-upstream.js';
import { http10BenchForFile } from './http10-held-bench.js';

const held = http10BenchForFile();
const http10 = held.http10;

it('an HTTP/1.0 client whose docker.proxy download broke off is not served another registry\'s copy cached meanwhile', async () => {
  const { digest, bytes } = held.bench.upstream.blob;
  held.bench.upstream.holdBodies();
  const redirect = await http10(`https://${HELD_HOST}:${held.bench.upstream.port}/v2/chunked-redirect/app/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  const waiting = http10(redirect.headers.location!);
  await held.bench.upstream.held(1);
  // While it waits for verification, another registry's copy of the digest is cached; then the storage cuts its answer.
  await held.bench.layover.app.cache.put(digest, bytes, { size: bytes.length, mediaType: null, kind: 'blob', source: 'other.test/team/app' });
  held.bench.upstream.cut();
  const answer = await waiting;
  // Before the change: a 200 with other.test's copy. Now decided again: the storage must show a window of it, and cannot.
  expect(answer.status).toBe(502);
  expect(answer.body.equals(bytes)).toBe(false);
});

