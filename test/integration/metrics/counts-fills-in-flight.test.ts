/**
 * layover_fills_in_flight and layover_fill_waiters while a download is under way, and the bytes its
 * clients got by source. The upstream is the fixture of ../faults/held-upstream.ts (no real registry
 * can be paused in the middle of a body); Layover, dnsmasq, TLS and the clients are real.
 */
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
