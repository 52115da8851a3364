/**
 * Issue 5, reliability: SIGTERM. The real `layover serve` (dist/cli/main.js) as a child process on
 * loopback ports, with a client in the middle of a blob miss when SIGTERM arrives (the fixture upstream
 * sends half the blob, then the rest 1.5 s later, or never). Layover goes on accepting connections for
 * SHUTDOWN_DRAIN (load balancers take it out meanwhile), then stops accepting and lets the response
 * finish, up to the grace period; a fill either commits or leaves no trace, and a Layover started on the
 * same data dir serves what was committed with the upstream gone.
 */
import { expect, it } from 'vitest';
import type { Digest } from '../../../src/registry/digest.js';
import { connectResult, restart, serve, setUp, startDownload } from './serve-process.js';

it('SIGTERM: accepts during the drain, then stops accepting, finishes the response in flight, commits its fill, and a restart serves it', async () => {
  const setup = await setUp();
  const layover = await serve(setup, ['--shutdown-drain', '1s']);
  const path = `/v2/slow/blobs/${setup.upstream.slow.digest}`;
  const { status, body } = await startDownload(setup, layover.ca, path);
  expect(status).toBe(200);
  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  expect(await connectResult(setup.upstream.port)).toBe('connected');
  await layover.logged('drain over: accepting no new connections');
  expect(await connectResult(setup.upstream.port)).toBe('ECONNREFUSED');
  expect((await body).equals(setup.upstream.slow.bytes)).toBe(true);
  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);

  const { again, tempFiles } = await restart(setup);
  expect(tempFiles).toEqual([]);
  expect(again.app.cache.stat(setup.upstream.slow.digest as Digest)?.size).toBe(setup.upstream.slow.bytes.length);
  const cached = await startDownload(setup, layover.ca, path);
  expect((await cached.body).equals(setup.upstream.slow.bytes)).toBe(true);
}, 60_000);

it('SIGTERM: a fill whose client has gone is finished before the exit (it belongs to the fill), and a restart serves it', async () => {
  const setup = await setUp();
  const layover = await serve(setup, ['--shutdown-drain', '0s']);
  const path = `/v2/slow/blobs/${setup.upstream.slow.digest}`;
  const download = await startDownload(setup, layover.ca, path);
  expect(download.status).toBe(200);
  download.abort();
  await download.body;
  layover.child.kill('SIGTERM');
  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);

  const { again, tempFiles } = await restart(setup);
  expect(tempFiles).toEqual([]);
  expect(again.app.cache.stat(setup.upstream.slow.digest as Digest)?.size).toBe(setup.upstream.slow.bytes.length);
}, 60_000);

/** SHUTDOWN_GRACE for the test below: short, to keep the run short; the default (25 s) is in the config tests. */
const SHUTDOWN_GRACE_MS = 3_000;

it(`SIGTERM with a response that cannot finish: exits after the ${SHUTDOWN_GRACE_MS / 1000} s grace, and the fill leaves no trace`, async () => {
  const setup = await setUp();
  // Timeouts longer than the grace period, so only the grace period can end the stalled response.
  const layover = await serve(setup, ['--proxy-read-timeout', '120s', '--send-timeout', '120s', '--shutdown-grace', `${SHUTDOWN_GRACE_MS}ms`, '--shutdown-drain', '1s']);
  const path = `/v2/stall/blobs/${setup.upstream.slow.digest}`;
  const { status, body } = await startDownload(setup, layover.ca, path);
  expect(status).toBe(200);
  const signalled = performance.now();
  layover.child.kill('SIGTERM');
  const [code] = await layover.exited;
  const ms = performance.now() - signalled;
  expect(code, layover.output()).toBe(1);
  expect(ms).toBeGreaterThanOrEqual(SHUTDOWN_GRACE_MS - 100);
  expect(ms).toBeLessThan(SHUTDOWN_GRACE_MS + 5_000);
  expect(layover.output()).toContain('grace period over');
  expect((await body).length).toBeLessThan(setup.upstream.slow.bytes.length);

  const { again, tempFiles } = await restart(setup);
  expect(tempFiles).toEqual([]);
  expect(again.app.cache.stat(setup.upstream.slow.digest as Digest)).toBeUndefined();
}, 60_000);
