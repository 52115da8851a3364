/**
 * CACHE_MAX_SIZE bounds what a download may write: a blob longer than the cache (here 2 MiB under a
 * 1 MiB cap) reaches its client whole and verified, and the cache keeps nothing of it. A client that
 * waits for verification (HTTP/1.0 without a length) is answered as an uncached request is, once,
 * through a registry or docker.proxy: a new download would only end the same way.
 *
 * The held-upstream fixture (./held-upstream.ts), dnsmasq, Layover in this process; real curl over
 * HTTP/1.0 (./http10-held-bench.ts).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { HELD_HOST } from './held-upstream.js';
import { http10BenchForFile } from './http10-held-bench.js';

const held = http10BenchForFile({ 'cache-max-size': '1m' });

const blobGets = (repository: string): number =>
  held.bench.upstream.seen.filter((seen) => seen.method === 'GET' && seen.url.startsWith(`/v2/${repository}/app/blobs/`)).length;

it('a client gets the whole blob, verified; the cache keeps nothing of it', async () => {
  const { bench } = held;
  const { digest, bytes } = bench.upstream.blob;
  const answer = await bench.ask(`/v2/ok/app/blobs/${digest}`);
  expect(answer.status).toBe(200);
  expect(answer.complete).toBe(true);
  expect(answer.body.equals(bytes)).toBe(true);
  expect(bench.layover.app.cache.stat(digest)).toBeUndefined();
  expect(await readdir(join(bench.layover.dataDir, 'cache', 'tmp'))).toEqual([]);
  expect(bench.layover.logs.find((line) => line.msg === 'cache fill dropped')).toMatchObject({ digest, reason: 'too-large', relay: true });
});

it('an HTTP/1.0 client waiting for verification is answered once, not sent round again', async () => {
  const { digest } = held.bench.upstream.blob;
  const answer = await held.http10(`https://${HELD_HOST}:${held.bench.upstream.port}/v2/chunked/app/blobs/${digest}`);
  // Passed on uncached, a body of no known length is not given to an HTTP/1.0 client (http10-clients-get-verified-lengths).
  expect(answer.status).toBe(502);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  // The download that found the blob too long, then the request passed on.
  expect(blobGets('chunked')).toBe(2);
});

it('an HTTP/1.0 client of a docker.proxy download without a length is answered once too', async () => {
  const { digest } = held.bench.upstream.blob;
  const storageGets = (): number => held.bench.upstream.seen.filter((seen) => seen.method === 'GET' && seen.url.startsWith('/storage/')).length;
  const redirect = await held.http10(`https://${HELD_HOST}:${held.bench.upstream.port}/v2/chunked-redirect/app/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  const before = storageGets();
  const answer = await held.http10(redirect.headers.location!);
  expect(answer.status).toBe(502);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  expect(storageGets() - before).toBe(1);
});

