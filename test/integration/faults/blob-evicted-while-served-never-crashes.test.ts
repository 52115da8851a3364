/**
 * Issue 10, one error path: a cached blob that goes away while a request for it is being decided
 * (evicted, or its file removed, between the access check and the read), or a cache that closes
 * while an upstream answer is on its way, never ends the process (no unhandled rejection, no uncaught
 * exception) and the client gets the bytes or a clean OCI error. The access check is made slow on
 * purpose: a client asking under another repository than the one the blob came from makes Layover
 * ask the upstream (a HEAD the fixture, held-upstream.ts, holds until the blob is gone).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { type HeldBench, startHeldBench } from './held-upstream.js';

const crashes: unknown[] = [];
const onCrash = (error: unknown): void => void crashes.push(error);

let bench: HeldBench;
beforeAll(async () => {
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
  bench = await startHeldBench();
}, 60_000);
afterAll(async () => {
  await bench?.close();
  process.off('unhandledRejection', onCrash);
  process.off('uncaughtException', onCrash);
});

/** Fills the cache with the fixture's blob (from `ok/app`). */
async function cacheBlob(): Promise<void> {
  const { upstream, layover } = bench;
  const filled = await bench.ask(`/v2/ok/app/blobs/${upstream.blob.digest}`);
  expect(filled.status).toBe(200);
  await vi.waitFor(() => expect(layover.app.cache.stat(upstream.blob.digest)).toBeDefined());
}

/** Asks for the cached blob under `repo` and runs `meanwhile` while Layover waits for the upstream's access answer. */
async function askWhileAccessIsChecked(repo: string, meanwhile: () => Promise<void> | void) {
  const { upstream } = bench;
  upstream.holdHeads();
  const answer = bench.ask(`/v2/${repo}/blobs/${upstream.blob.digest}`);
  await upstream.held(1);
  await meanwhile();
  upstream.release();
  return answer;
}

it('a blob evicted during the access check is fetched again', async () => {
  const { upstream, layover } = bench;
  await cacheBlob();
  const answer = await askWhileAccessIsChecked('ok/evicted', async () => {
    await layover.app.cache.prune(0);
    expect(layover.app.cache.stat(upstream.blob.digest)).toBeUndefined();
  });
  expect(answer.status).toBe(200);
  expect(answer.body.equals(upstream.blob.bytes)).toBe(true);
  expect(crashes).toEqual([]);
});

it('a blob whose file was removed during the access check is fetched again, not a 500', async () => {
  const { upstream, layover } = bench;
  await cacheBlob();
  const answer = await askWhileAccessIsChecked('ok/removed', () => {
    rmSync(new CacheLayout(join(layover.dataDir, 'cache')).blobPath(upstream.blob.digest));
  });
  expect(answer.status).toBe(200);
  expect(answer.complete).toBe(true);
  expect(answer.body.equals(upstream.blob.bytes)).toBe(true);
  expect(layover.logs.some((line) => line.msg === 'cache: an indexed blob has no file; dropping it')).toBe(true);
  expect(crashes).toEqual([]);
});

it('an upstream answer arriving after the cache closed is a clean error, not the end of the process', async () => {
  const { upstream, layover } = bench;
  // The previous download may still be committing after its client got the last byte.
  await vi.waitFor(() => expect(layover.app.cache.stats().activeFills).toBe(0));
  await layover.app.cache.prune(0);
  expect(layover.app.cache.stat(upstream.blob.digest)).toBeUndefined();
  upstream.holdGets();
  const answer = bench.ask(`/v2/ok/app/blobs/${upstream.blob.digest}`);
  await upstream.held(1);
  await layover.app.cache.close();
  upstream.release();
  const closed = await answer;
  expect(closed.status).toBe(503);
  expect(JSON.parse(closed.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  // The process is still serving.
  expect((await bench.ask('/v2/')).status).toBe(200);
  expect(crashes).toEqual([]);
});
