/**
 * concurrent-clients: CLIENTS curl clients at once (HTTP/1.1 over TLS, `-o /dev/null`):
 *   same blob      all pull one uncached 1 GiB blob — from the registry directly (reference), through
 *                  Layover (one shared fill expected: 1 upstream GET), and through the distribution
 *                  registry in pull-through mode (REGISTRY-NOTES: N clients, N upstream downloads);
 *   different blobs each pulls its own 1 GiB blob — from the registry directly (reference) and from
 *                  Layover's cache (all hits: 0 upstream GETs).
 * Printed per case: total wall time until the last client finished, aggregate MB/s and its ratio to
 * the reference, the fastest and slowest client, upstream blob GETs (the upstream registry's access
 * log), the serving process's CPU seconds per GiB sent, and its RSS before and at peak (VmRSS polled
 * every 100 ms) — the point being that memory stays flat however many large downloads are in flight.
 * Everything runs in the bench's network namespace (test/bench), removed afterwards. About 3.5 minutes,
 * most of it pushing and caching 8 GiB of blobs.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { GiB, type PushedBlob, pushBlob } from './lib/blobs.js';
import { download, type Transfer } from './lib/curl.js';
import { cpuSeconds, OtherCpu, RssSampler } from './lib/process-stats.js';
import { fixed, interference, mbPerSecond, megabytes, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { layoverOptions, type Server, type Servers, startServers } from './lib/servers.js';

const CLIENTS = 8;
const BLOB_SIZE = GiB;
const REPOSITORY = 'bench/concurrent';

interface Measured {
  blobs: string;
  label: string;
  seconds: number;
  transfers: Transfer[];
  upstreamGets: number;
  cpuPerGiB: number;
  rssBefore: number;
  rssPeak: number;
}

describe('concurrent-clients', () => {
  let bench: Bench;
  let servers: Servers;
  let blobs: PushedBlob[];

  beforeAll(async () => {
    await sampleMachineLoad();
    bench = await startBench({ images: [], layover: layoverOptions() });
    servers = await startServers(bench);
    blobs = [];
    for (let i = 0; i < CLIENTS; i++) blobs.push(await pushBlob(bench, REPOSITORY, `concurrent-clients ${i}`, BLOB_SIZE));
  });
  afterAll(() => bench?.close());

  test(`${CLIENTS} clients at once`, async () => {
    const other = new OtherCpu(bench.sandbox);
    const results: Measured[] = [];
    const layoverCommitted = (digest: string): Promise<unknown> =>
      bench.layover!.waitForLog((line) => line.msg === 'cache fill committed' && line.digest === digest, 120_000);

    const run = async (kind: string, label: string, server: Server, paths: PushedBlob[], settle?: () => Promise<unknown>): Promise<void> => {
      bench.registry.clearRequests();
      const cpuBefore = cpuSeconds(server.pid);
      const rss = new RssSampler(server.pid);
      const started = performance.now();
      const transfers = await Promise.all(paths.map((blob) => download(bench.sandbox, server.endpoint, blob.path, { bytes: blob.size })));
      const seconds = (performance.now() - started) / 1000;
      await settle?.();
      const { before, peak } = rss.stop();
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      await bench.registry.sync();
      const wanted = new Set(paths.map((b) => b.path));
      const upstreamGets = bench.registry.requests().filter((r) => r.method === 'GET' && wanted.has(r.path)).length;
      const bytes = paths.reduce((sum, b) => sum + b.size, 0);
      results.push({ blobs: kind, label, seconds, transfers, upstreamGets, cpuPerGiB: cpu / (bytes / GiB), rssBefore: before, rssPeak: peak });
    };

    const shared = blobs[0]!;
    const same = Array.from({ length: CLIENTS }, () => shared);
    await run('same, uncached', 'registry (direct)', servers.direct, same);
    await run('same, uncached', 'Layover', servers.layover, same, () => layoverCommitted(shared.digest));
    await run('same, uncached', 'registry proxy', servers.proxy, same, () => servers.proxy.waitForBlob(shared.digest, shared.size));

    // Cache the other blobs in Layover first, one at a time and untimed.
    for (const blob of blobs.slice(1)) {
      await download(bench.sandbox, servers.layover.endpoint, blob.path, { bytes: blob.size });
      await layoverCommitted(blob.digest);
    }
    await run('different, cached', 'registry (direct)', servers.direct, blobs);
    await run('different, cached', 'Layover', servers.layover, blobs);

    const rows = results.map((m) => {
      const reference = results.find((r) => r.blobs === m.blobs)!;
      const total = m.transfers.reduce((sum, t) => sum + t.bytes, 0);
      const clients = m.transfers.map((t) => t.seconds);
      return [
        m.blobs,
        m.label,
        fixed(m.seconds, 1),
        fixed(mbPerSecond(total, m.seconds), 0),
        ratio(mbPerSecond(total, m.seconds), mbPerSecond(total, reference.seconds)),
        `${fixed(Math.min(...clients), 1)}–${fixed(Math.max(...clients), 1)}`,
        m === reference ? '(is upstream)' : `${m.upstreamGets}`,
        fixed(m.cpuPerGiB),
        megabytes(m.rssBefore),
        megabytes(m.rssPeak),
      ];
    });
    printTable(
      `concurrent-clients: ${CLIENTS} clients at once, ${BLOB_SIZE / GiB} GiB blobs, curl over TLS (HTTP/1.1)`,
      ['blobs', 'server', 'total s', 'MB/s (all)', 'vs direct', 'client s', 'upstream GETs', 'CPU-s/GiB', 'RSS before MB', 'RSS peak MB'],
      rows,
      [
        interference(other.read()),
        'Upstream GETs: requests for these blobs in the upstream registry\'s access log during the case.',
        'CPU and RSS are the serving process\'s: the upstream registry, Layover or the proxy registry; CPU per GiB sent to clients, fills included.',
      ],
    );
    const layoverSame = results.find((m) => m.blobs.startsWith('same') && m.label === 'Layover')!;
    expect(layoverSame.upstreamGets).toBe(1);
  });
});
