/**
 * Issue 12, prefetch: how a prefetch ends when it cannot finish. A client hanging up stops new blobs
 * from starting while those begun are fetched to their commit (a fill belongs to the cache); an image
 * past its deadline fails with that reason; closeApp ends a `prefetch:` round at once. The upstream is
 * a fixture that holds blob answers (./held-image-registry.ts); Layover, dnsmasq, TLS and the admin
 * API's HTTP are real.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Prefetcher } from '../../../src/prefetch/prefetcher.js';
import { PREFETCH_CLIENT_GONE, PREFETCH_DONE } from '../../../src/prefetch/prefetch-routes.js';
import type { PrefetchLine } from '../../../src/prefetch/prefetch-progress.js';
import { committed, type HeldImageBench, startHeldImageBench, until } from './held-image-registry.js';

let bench: HeldImageBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});


it('a client that hangs up stops new blobs from starting; the four begun are fetched to their commit', async () => {
  const b = (bench = await startHeldImageBench());
  b.upstream.gate.start();
  const token = readFileSync(join(b.layover.dataDir, 'admin.token'), 'utf8').trim();
  const received: string[] = [];
  const client = request({ host: '127.0.0.1', port: b.layover.addresses.http!.port, method: 'POST', path: '/admin/prefetch', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  client.on('response', (res) => res.on('data', (chunk: Buffer) => received.push(chunk.toString('utf8'))));
  client.on('error', () => undefined);
  client.end(JSON.stringify({ images: [b.image] }));
  await b.upstream.gate.held(4);
  expect(received.join('')).toContain('"event":"blob-started"');
  client.destroy();
  await until(() => b.layover.logs.some((l) => l.msg === PREFETCH_CLIENT_GONE), 'the route noticed the client leave');
  b.upstream.gate.release();

  const done = await (async () => {
    await until(() => b.layover.logs.some((l) => l.msg === PREFETCH_DONE), 'the prefetch ended');
    return b.layover.logs.find((l) => l.msg === PREFETCH_DONE)!;
  })();
  expect(done).toMatchObject({ ok: 0, failed: [{ image: b.image, error: 'the client went away' }] });
  const fetched = b.upstream.blobGets();
  expect(fetched).toHaveLength(4);
  for (const digest of fetched) await until(() => committed(b, digest), `${digest} committed`);
  for (const digest of b.upstream.blobs.filter((d) => !fetched.includes(d))) expect(committed(b, digest)).toBe(false);
  expect(b.upstream.blobGets()).toHaveLength(4);
}, 60_000);

it('an image past its deadline fails with that reason; the fills it began still commit', async () => {
  const b = (bench = await startHeldImageBench());
  b.upstream.gate.start();
  const { app } = b.layover;
  const prefetcher = new Prefetcher({ https: app.https, config: app.config, cache: app.cache, imageDeadlineMs: 1000 });
  const never = new AbortController().signal;
  const lines: PrefetchLine[] = [];
  const summary = await prefetcher.run({ images: [b.image, 'held-image.test/Bad'], platform: null, referrers: false }, (line) => lines.push(line), { stopStarting: never, abort: never });
  expect(summary.ok).toEqual([]);
  expect(summary.failed).toEqual([
    { image: b.image, error: 'not done within 1 s, the deadline of one image' },
    { image: 'held-image.test/Bad', error: expect.stringContaining('is not an image reference') },
  ]);
  expect(lines.map((l) => l.event)).toEqual(expect.arrayContaining(['start', 'image-started', 'manifest', 'blob-started', 'image-failed', 'summary']));
  expect(lines.at(-1)?.event).toBe('summary');
  b.upstream.gate.release();
  for (const digest of b.upstream.blobGets()) await until(() => committed(b, digest), `${digest} committed`);
}, 60_000);

it('closeApp stops a prefetch: round at once: the round ends and is logged while its blobs are still held upstream; nothing new starts', async () => {
  const b = (bench = await startHeldImageBench({ prefetchList: true, holdBlobs: true }));
  await b.upstream.gate.held(4);
  // What closeApp does first: the round must end without waiting for the upstream (which closeApp's
  // later steps, the upstream pool and the cache, do wait for).
  await b.layover.app.prefetchSchedule!.stop();
  const round = b.layover.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('prefetch round done'));
  expect(round).toMatchObject({ round: 1, images: 1, ok: 0, failed: [{ image: b.image, error: 'Layover is stopping' }] });
  b.upstream.gate.release();
  await b.layover.close();
  expect(b.layover.logs.filter((l) => l.msg === 'prefetch round failed')).toEqual([]);
  expect(b.upstream.blobGets()).toHaveLength(4);
}, 60_000);
