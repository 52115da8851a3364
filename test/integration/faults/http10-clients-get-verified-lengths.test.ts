/**
 * HTTP/1.0 has no chunked encoding: a body of no known length ends by the connection's close, and a
 * download that proved the bytes wrong ends the same way, after all but the last byte. A docker.proxy
 * download (REDIRECTS=rewrite) from a storage host that sends no Content-Length is therefore given to
 * an HTTP/1.0 client only once verified, from the cache, with its length; an answer passed through
 * uncached (a Range the upstream ignored) is not passed on without a length at all.
 *
 * The held-upstream fixture (chunked-redirect: its storage answers without Content-Length), dnsmasq,
 * Layover in this process; real curl over HTTP/1.0 (./http10-held-bench.ts).
 */
import { expect, it } from 'vitest';
import { HELD_HOST } from './held-upstream.js';
import { http10BenchForFile } from './http10-held-bench.js';

const held = http10BenchForFile();
const http10 = held.http10;

// First: the blob is not cached yet, so the Range goes upstream.
it('an HTTP/1.0 client is not passed an uncached whole body without Content-Length (a Range the upstream ignored)', async () => {
  const { digest } = held.bench.upstream.blob;
  const passed = await http10(`https://${HELD_HOST}:${held.bench.upstream.port}/v2/chunked/app/blobs/${digest}`, ['-r', '0-99']);
  // Before the change: a 200 without Content-Length, unverified, ended by the close.
  expect(passed.status).toBe(502);
  expect(JSON.parse(passed.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  expect(held.bench.layover.app.cache.stat(digest)).toBeUndefined();
});

it('an HTTP/1.0 client of a docker.proxy download without Content-Length gets the verified blob with its length', async () => {
  const { digest, bytes } = held.bench.upstream.blob;
  const redirect = await http10(`https://${HELD_HOST}:${held.bench.upstream.port}/v2/chunked-redirect/app/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  expect(redirect.headers.location).toMatch(/^https:\/\/docker\.proxy[:/]/);
  // Before the change: a 200 without Content-Length, ended by the close whether or not the bytes matched.
  const blob = await http10(redirect.headers.location!);
  expect(blob.status).toBe(200);
  expect(blob.headers['content-length']).toBe(String(bytes.length));
  expect(blob.body.equals(bytes)).toBe(true);
});
