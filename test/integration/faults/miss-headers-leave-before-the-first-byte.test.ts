/**
 * Issue 13 (a cold blob's first byte): the client of a blob miss gets its status and headers as soon
 * as the upstream's 200 has come, not with the first bytes of the body. The fixture upstream
 * (held-upstream.ts) sends its headers and holds every byte of the body. What a 200 sent early costs:
 * an upstream that then fails before its first byte cuts the client's answer short instead of
 * turning into an OCI error; nothing is cached of it either way.
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { type Answer, HELD_BLOB_SIZE, type HeldBench, startHeldBench } from './held-upstream.js';

// A bench of its own for each test: each starts from an empty cache (the fixture has one blob).
let bench: HeldBench;
beforeEach(async () => {
  bench = await startHeldBench();
}, 60_000);
afterEach(() => bench?.close());

/** Asks for the blob under `repo` while the upstream holds its body; resolves once the client has its headers (or after 5 s without them). */
async function askWithBodyHeld(repo: string): Promise<{ headersCame: boolean; answer: Promise<Answer> }> {
  const { upstream } = bench;
  upstream.holdFirstBytes();
  let headers!: () => void;
  const came = new Promise<boolean>((resolve) => (headers = () => resolve(true)));
  const answer = bench.ask(`/v2/${repo}/blobs/${upstream.blob.digest}`, { onResponse: () => headers() });
  await upstream.held(1);
  const headersCame = await Promise.race([came, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000))]);
  return { headersCame, answer };
}

it('a miss sends its headers while the upstream has sent none of the body, then the verified blob', async () => {
  const { upstream, layover } = bench;
  const { headersCame, answer } = await askWithBodyHeld('ok/app');
  expect(headersCame).toBe(true);
  // The upstream holds every byte of the body: the download is under way with nothing of it yet.
  expect(layover.app.cache.activeFill(upstream.blob.digest)?.verified).toBe(false);
  upstream.release();

  const whole = await answer;
  expect(whole.status).toBe(200);
  expect(whole.headers['content-length']).toBe(String(HELD_BLOB_SIZE));
  expect(whole.headers['docker-content-digest']).toBe(upstream.blob.digest);
  expect(whole.complete).toBe(true);
  expect(whole.body.equals(upstream.blob.bytes)).toBe(true);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest)?.size).toBe(HELD_BLOB_SIZE));
}, 30_000);

it('an upstream that fails after its headers, before its first byte: the answer is cut short, nothing is cached, the next client gets the blob', async () => {
  const { upstream, layover } = bench;
  const { headersCame, answer } = await askWithBodyHeld('ok/other');
  expect(headersCame).toBe(true);
  upstream.cut();

  const cut = await answer;
  expect(cut.status).toBe(200);
  expect(cut.complete).toBe(false);
  expect(cut.body.length).toBe(0);
  await vi.waitFor(() => expect(layover.logs.some((line) => line.msg === 'cache fill dropped' && line.digest === upstream.blob.digest)).toBe(true));
  expect(layover.app.cache.activeFill(upstream.blob.digest)).toBeUndefined();
  expect(layover.app.cache.stat(upstream.blob.digest)).toBeUndefined();

  const next = await bench.ask(`/v2/ok/other/blobs/${upstream.blob.digest}`);
  expect(next.status).toBe(200);
  expect(next.complete).toBe(true);
  expect(next.body.equals(upstream.blob.bytes)).toBe(true);
}, 30_000);
