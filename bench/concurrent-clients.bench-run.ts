/**
 * concurrent-clients: CLIENTS curl clients at once (HTTP/1.1 over TLS, `-o /dev/null`):
 *   same blob      all pull one uncached 1 GiB blob — from the registry directly (reference), through
 *                  Layover (one shared fill expected: 1 upstream GET), through the distribution
 *                  registry in pull-through mode (REGISTRY-NOTES: N clients, N upstream downloads) and
 *                  through nginx proxy_cache (`proxy_cache_lock`: one fetch, the others wait for it);
 *   different blobs each pulls its own 1 GiB blob — from the registry directly (reference) and from
 *                  the caches of Layover, the proxy registry and nginx (all hits: 0 upstream GETs).
 * Printed per case: total wall time until the last client finished, aggregate MB/s, its ratio to the
 * reference and to the best of the two peers (proxy registry, nginx), the fastest and slowest client,
 * upstream blob GETs (the upstream registry's access log), the serving processes' CPU seconds per GiB
 * sent, and RSS before and at peak (VmRSS polled every 100 ms; for nginx the sum of its workers, and
 * the largest worker) — the point being that memory stays flat however many large downloads are in
 * flight. The warm case runs WARM_RUNS times per server (a single run of it moved by ±10% from one
 * run to the next, nginx's as much as Layover's): time and MB/s are the median run's, the client range,
 * CPU and peak RSS over all runs. Under the table, issue 13's targets for 8 warm clients. Everything
 * runs in the bench's network namespace (test/bench), removed afterwards. About 5 minutes, most of it
 * pushing 8 GiB of blobs and caching them in three proxies.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { GiB, type PushedBlob, pushBlob } from './lib/blobs.js';
import { download, type Transfer } from './lib/curl.js';
import { OtherCpu, RssSampler } from './lib/process-stats.js';
import { fixed, interference, mbPerSecond, median, megabytes, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { layoverOptions, type Server, serverCpuSeconds, type Servers, startServers } from './lib/servers.js';
import { atLeast, atMost, megabytesRss, type Target, targetLines, times } from './lib/targets.js';

const CLIENTS = 8;
const WARM_RUNS = 3;
const BLOB_SIZE = GiB;
const REPOSITORY = 'bench/concurrent';

interface Run {
  seconds: number;
  transfers: Transfer[];
}

interface Measured {
  blobs: string;
  server: Server;
  runs: Run[];
  upstreamGets: number;
  cpuPerGiB: number;
  rssBefore: number;
  rssPeak: number;
  rssPeakLargest: number;
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

    const run = async (kind: string, server: Server, paths: PushedBlob[], times: number, settle?: () => Promise<unknown>): Promise<void> => {
      bench.registry.clearRequests();
      const cpuBefore = serverCpuSeconds(server);
      const rss = new RssSampler(() => server.rssPids());
      const runs: Run[] = [];
      for (let i = 0; i < times; i++) {
        const started = performance.now();
        const transfers = await Promise.all(paths.map((blob) => download(bench.sandbox, server.endpoint, blob.path, { bytes: blob.size })));
        runs.push({ seconds: (performance.now() - started) / 1000, transfers });
      }
      await settle?.();
      const { before, peak, peakLargest } = rss.stop();
      const cpu = serverCpuSeconds(server) - cpuBefore;
      await bench.registry.sync();
      const wanted = new Set(paths.map((b) => b.path));
      const upstreamGets = bench.registry.requests().filter((r) => r.method === 'GET' && wanted.has(r.path)).length;
      const bytes = times * paths.reduce((sum, b) => sum + b.size, 0);
      results.push({ blobs: kind, server, runs, upstreamGets, cpuPerGiB: cpu / (bytes / GiB), rssBefore: before, rssPeak: peak, rssPeakLargest: peakLargest });
    };

    const shared = blobs[0]!;
    const same = Array.from({ length: CLIENTS }, () => shared);
    const SAME = 'same, uncached';
    const DIFFERENT = 'different, cached';
    await run(SAME, servers.direct, same, 1);
    await run(SAME, servers.layover, same, 1, () => layoverCommitted(shared.digest));
    await run(SAME, servers.proxy, same, 1, () => servers.proxy.waitForBlob(shared.digest, shared.size));
    await run(SAME, servers.nginx, same, 1, () => servers.nginx.waitForCached(shared.path, shared.size));

    // Cache the other blobs in the three proxies first, one blob at a time (the proxies side by side) and untimed.
    for (const blob of blobs.slice(1)) {
      const fill = async (server: Server, committed: () => Promise<unknown>): Promise<void> => {
        await download(bench.sandbox, server.endpoint, blob.path, { bytes: blob.size });
        await committed();
      };
      await Promise.all([
        fill(servers.layover, () => layoverCommitted(blob.digest)),
        fill(servers.proxy, () => servers.proxy.waitForBlob(blob.digest, blob.size)),
        fill(servers.nginx, () => servers.nginx.waitForCached(blob.path, blob.size)),
      ]);
    }
    for (const server of [servers.direct, servers.layover, servers.proxy, servers.nginx]) await run(DIFFERENT, server, blobs, WARM_RUNS);

    const runTotal = (r: Run): number => mbPerSecond(r.transfers.reduce((sum, t) => sum + t.bytes, 0), r.seconds);
    const total = (m: Measured): number => median(m.runs.map(runTotal));
    // The run whose MB/s is the median (of an odd number of runs): its wall time goes with it.
    const medianRun = (m: Measured): Run => m.runs.find((r) => runTotal(r) === total(m)) ?? m.runs[0]!;
    const find = (kind: string, server: Server): Measured => results.find((r) => r.blobs === kind && r.server === server)!;
    const bestPeer = (kind: string): number => Math.max(total(find(kind, servers.proxy)), total(find(kind, servers.nginx)));
    const rows = results.map((m) => {
      const reference = find(m.blobs, servers.direct);
      const clients = m.runs.flatMap((r) => r.transfers.map((t) => t.seconds));
      const grouped = m.server.rssPids().length > 1;
      return [
        m.blobs,
        m.server.label,
        `${m.runs.length}`,
        fixed(medianRun(m).seconds, 1),
        fixed(total(m), 0),
        ratio(total(m), total(reference)),
        m === reference ? '' : ratio(total(m), bestPeer(m.blobs)),
        `${fixed(Math.min(...clients), 1)}–${fixed(Math.max(...clients), 1)}`,
        m === reference ? '(is upstream)' : `${m.upstreamGets}`,
        fixed(m.cpuPerGiB),
        megabytes(m.rssBefore),
        grouped ? `${megabytes(m.rssPeak)} (${megabytes(m.rssPeakLargest)} largest)` : megabytes(m.rssPeak),
      ];
    });
    const layoverWarm = find(DIFFERENT, servers.layover);
    const targets: Target[] = [
      atLeast(`warm 1 GiB, ${CLIENTS} clients, Layover vs the best of nginx and distribution`, total(layoverWarm) / bestPeer(DIFFERENT), 1, times),
      atMost(`peak RSS of Layover serving ${CLIENTS} × 1 GiB warm`, layoverWarm.rssPeak / 1e6, 150, megabytesRss),
    ];
    printTable(
      `concurrent-clients: ${CLIENTS} clients at once, ${BLOB_SIZE / GiB} GiB blobs, curl over TLS (HTTP/1.1)`,
      ['blobs', 'server', 'runs', 'total s', 'MB/s (all)', 'vs direct', 'vs best peer', 'client s', 'upstream GETs', 'CPU-s/GiB', 'RSS before MB', 'RSS peak MB'],
      rows,
      [
        interference(other.read()),
        'Upstream GETs: requests for these blobs in the upstream registry\'s access log during the case.',
        'CPU and RSS are the serving processes\': the upstream registry, Layover, the proxy registry, or nginx (CPU: master and workers; RSS: the workers\' sum, and the largest); CPU per GiB sent to clients, fills included.',
        'vs best peer: aggregate MB/s over the better of the proxy registry and nginx in the same case.',
        `Warm: ${WARM_RUNS} runs of all ${CLIENTS} downloads per server; total s and MB/s of the median run, client s over all runs, CPU per GiB and peak RSS over all runs.`,
        ...targetLines(targets),
      ],
    );
    const layoverSame = find(SAME, servers.layover);
    expect(layoverSame.upstreamGets).toBe(1);
  });
});
