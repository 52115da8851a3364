/**
 * layover_fills_in_flight and layover_fill_waiters while a download is under way, and the bytes its
 * clients got by source. The upstream is the fixture of ../faults/held-upstream.ts (no real registry
 * can be paused in the middle of a body); Layover, dnsmasq, TLS and the clients are real.
 */
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { HELD_BLOB_SIZE, type HeldBench, startHeldBench } from '../faults/held-upstream.js';
import { parseExposition, type Sample, total } from '../../unit/metrics/exposition.js';

let bench: HeldBench;
beforeAll(async () => {
  bench = await startHeldBench();
}, 60_000);
afterAll(() => bench?.close());

async function scrape(): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${bench.layover.addresses.http!.port}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

it('shows one fill and its three readers while the download is held, none once it is done; the upstream sent the bytes once', async () => {
  const { upstream, layover } = bench;
  const path = `/v2/ok/app/blobs/${upstream.blob.digest}`;
  upstream.holdBodies();
  const first = bench.ask(path);
  await upstream.held(1);
  await vi.waitFor(() => expect(layover.app.cache.activeFill(upstream.blob.digest)).toBeDefined());
  const joined = [bench.ask(path), bench.ask(path)];
  await vi.waitFor(async () => {
    const samples = await scrape();
    expect(total(samples, 'layover_fills_in_flight')).toBe(1);
    expect(total(samples, 'layover_fill_waiters')).toBe(3);
  });
  upstream.release();
  const answers = await Promise.all([first, ...joined]);
  for (const answer of answers) expect(answer).toMatchObject({ status: 200, complete: true });
  await vi.waitFor(async () => {
    const samples = await scrape();
    expect(total(samples, 'layover_fills_in_flight')).toBe(0);
    expect(total(samples, 'layover_fill_waiters')).toBe(0);
  });
  const samples = await scrape();
  expect(total(samples, 'layover_requests_total', { route: 'blob', cache: 'miss', status: '2xx' })).toBe(3);
  expect(total(samples, 'layover_served_bytes_total', { source: 'upstream' })).toBe(HELD_BLOB_SIZE);
  expect(total(samples, 'layover_served_bytes_total', { source: 'cache' })).toBe(2 * HELD_BLOB_SIZE);
  expect(total(samples, 'layover_cache_bytes')).toBe(HELD_BLOB_SIZE);
  expect(total(samples, 'layover_upstream_request_duration_seconds_count')).toBeGreaterThanOrEqual(1);
}, 60_000);

/** GET of a docker.proxy URL, as a client follows a storage redirect; the whole body read. */
function followDockerProxy(port: number, ca: string, path: string): Promise<{ status: number; bytes: number; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername: 'docker.proxy', ca, path, headers: { host: 'docker.proxy' }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, complete: true }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes, complete: false }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('counts clients that join a storage download through docker.proxy as served from the cache, as for registry downloads', async () => {
  // A Layover of its own: the first case cached the blob in the shared bench.
  const fresh = await startHeldBench();
  try {
    const scrapeFresh = async (): Promise<Sample[]> => parseExposition(await (await fetch(`http://127.0.0.1:${fresh.layover.addresses.http!.port}/metrics`)).text());
    const redirect = await fresh.ask(`/v2/redirect/app/blobs/${fresh.upstream.blob.digest}`);
    expect(redirect.status).toBe(307);
    const location = new URL(String(redirect.headers.location));
    expect(location.hostname).toBe('docker.proxy');
    const follow = () => followDockerProxy(fresh.layover.addresses.https.port, fresh.layover.app.ca.certPem, `${location.pathname}${location.search}`);
    fresh.upstream.holdBodies();
    const first = follow();
    await fresh.upstream.held(1);
    await vi.waitFor(() => expect(fresh.layover.app.cache.activeFill(fresh.upstream.blob.digest)).toBeDefined());
    const joined = [follow(), follow()];
    await vi.waitFor(async () => expect(total(await scrapeFresh(), 'layover_fill_waiters')).toBe(3));
    fresh.upstream.release();
    for (const answer of await Promise.all([first, ...joined])) expect(answer).toEqual({ status: 200, bytes: HELD_BLOB_SIZE, complete: true });
    const samples = await scrapeFresh();
    expect(total(samples, 'layover_served_bytes_total', { source: 'upstream' })).toBe(HELD_BLOB_SIZE);
    expect(total(samples, 'layover_served_bytes_total', { source: 'cache' })).toBe(2 * HELD_BLOB_SIZE);
  } finally {
    await fresh.close();
  }
}, 60_000);
