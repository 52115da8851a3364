/**
 * Issue 10, item 8: a Range request that joins a download in progress must never get a successful
 * answer with bytes that were not verified. The fixture upstream (held-upstream.ts) starts the blob
 * and holds its last 64 KiB; a second client asks for the first 100 bytes meanwhile. A range that
 * ends before the blob does waits for the download's verification: a download of wrong bytes ends
 * it with a clean 502 DIGEST_INVALID, a good one with a 206 from the cache, and the upstream sees
 * one GET for the digest either way. A range reaching the end of the blob follows the download like
 * a full-body reader: its final byte only after verification, so wrong bytes never complete it.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { RANGE_WAITS } from '../../../src/proxy/blob-route.js';
import type { Digest } from '../../../src/registry/digest.js';
import { type Answer, HELD_BLOB_SIZE, type HeldBench, startHeldBench } from './held-upstream.js';

let bench: HeldBench;
beforeAll(async () => {
  bench = await startHeldBench();
}, 60_000);
afterAll(() => bench?.close());

/** Starts the download of `repo`'s blob with its tail held upstream; resolves once the fill is under way. */
async function startHeldDownload(repo: string): Promise<{ answer: Promise<Answer> }> {
  const { upstream, layover } = bench;
  upstream.holdBodies();
  const full = bench.ask(`/v2/${repo}/blobs/${upstream.blob.digest}`);
  await upstream.held(1);
  await vi.waitFor(() => expect(layover.app.cache.activeFill(upstream.blob.digest)?.meta.size).toBe(HELD_BLOB_SIZE));
  return { answer: full };
}

/** A Range request during the held download; resolves once it is answered or known to be waiting. */
async function askRangeDuringDownload(repo: string, range: string): Promise<{ answer: Promise<Answer> }> {
  const { upstream, layover } = bench;
  const waitsBefore = layover.logs.filter((line) => line.msg === RANGE_WAITS).length;
  const answer = bench.ask(`/v2/${repo}/blobs/${upstream.blob.digest}`, { headers: { range } });
  let answered = false;
  void answer.then(() => (answered = true)).catch(() => (answered = true));
  await vi.waitFor(() => expect(answered || layover.logs.filter((line) => line.msg === RANGE_WAITS).length > waitsBefore).toBe(true));
  return { answer };
}

const gets = (digest: Digest): number => bench.upstream.seen.filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${digest}`)).length;

it('a range of a download of wrong bytes gets a clean error, never a 206 with those bytes', async () => {
  const { upstream, layover } = bench;
  const { answer: full } = await startHeldDownload('wrong/app');
  const { answer: range } = await askRangeDuringDownload('wrong/app', 'bytes=0-99');
  upstream.release();

  const part = await range;
  expect(part.body.subarray(0, 100).equals(upstream.wrongBytes.subarray(0, 100)) && part.status === 206).toBe(false);
  expect(part.status).toBe(502);
  expect(JSON.parse(part.body.toString())).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
  expect((await full).complete).toBe(false);
  await vi.waitFor(() => expect(layover.app.cache.activeFill(upstream.blob.digest)).toBeUndefined());
  expect(layover.app.cache.stat(upstream.blob.digest)).toBeUndefined();
}, 30_000);

it('a range reaching the end of the blob follows the download but never completes with wrong bytes', async () => {
  const { upstream } = bench;
  const { answer: full } = await startHeldDownload('wrong/app');
  const tail = bench.ask(`/v2/wrong/app/blobs/${upstream.blob.digest}`, { headers: { range: `bytes=${HELD_BLOB_SIZE - 200 * 1024}-` } });
  upstream.release();
  const part = await tail;
  expect(part.status === 206 && part.complete).toBe(false);
  expect((await full).complete).toBe(false);
}, 30_000);

it('a range of a good download is answered from the cache once it is verified, with one upstream GET', async () => {
  const { upstream, layover } = bench;
  const before = gets(upstream.blob.digest);
  const { answer: full } = await startHeldDownload('ok/app');
  const { answer: range } = await askRangeDuringDownload('ok/app', 'bytes=0-99');
  upstream.release();

  const part = await range;
  expect(part.status).toBe(206);
  expect(part.complete).toBe(true);
  expect(part.headers['content-range']).toBe(`bytes 0-99/${HELD_BLOB_SIZE}`);
  expect(part.body.equals(upstream.blob.bytes.subarray(0, 100))).toBe(true);
  const whole = await full;
  expect(whole.complete).toBe(true);
  expect(whole.body.equals(upstream.blob.bytes)).toBe(true);
  expect(gets(upstream.blob.digest) - before).toBe(1);
  expect(layover.app.cache.stat(upstream.blob.digest)?.size).toBe(HELD_BLOB_SIZE);
}, 30_000);
