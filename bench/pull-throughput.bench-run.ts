/**
 * pull-throughput: one client downloads one large blob (64 MiB, then 1 GiB) with
 * `curl --http1.1 -o /dev/null` over TLS, from
 *   (a) the upstream distribution registry directly — the reference,
 *   (b) Layover, cold: a miss, the download streams to the client while Layover fills its cache,
 *   (c) Layover, warm: a hit, served from the cache,
 *   (d) the distribution registry in pull-through mode, cold and then warm (after its background copy
 *       has committed).
 * Warm and direct cases run WARM_RUNS times and report the median. Printed per case: seconds, MB/s
 * (decimal), the ratio of MB/s to (a), the serving process's CPU seconds per GiB sent (upstream
 * registry for (a), Layover for (b, c), the proxy registry for (d); /proc/<pid>/stat utime+stime,
 * cold cases measured until the fill has committed), and the upstream blob GETs the case caused.
 * Everything runs in the bench's network namespace (test/bench), removed afterwards. About 1 minute.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { GiB, MiB, type PushedBlob, pushBlob } from './lib/blobs.js';
import { download, type Transfer } from './lib/curl.js';
import { cpuSeconds, OtherCpu } from './lib/process-stats.js';
import { fixed, interference, mbPerSecond, median, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { layoverOptions, type Server, type Servers, startServers } from './lib/servers.js';

const SIZES = [64 * MiB, GiB];
const WARM_RUNS = 3;
const REPOSITORY = 'bench/throughput';

interface Measured {
  blob: string;
  label: string;
  runs: Transfer[];
  cpuPerGiB: number;
  upstreamGets: number;
}

describe('pull-throughput', () => {
  let bench: Bench;
  let servers: Servers;
  let blobs: PushedBlob[];

  beforeAll(async () => {
    await sampleMachineLoad();
    bench = await startBench({ images: [], layover: layoverOptions() });
    servers = await startServers(bench);
    blobs = [];
    for (const size of SIZES) blobs.push(await pushBlob(bench, REPOSITORY, `pull-throughput ${size}`, size));
  });
  afterAll(() => bench?.close());

  test('one client, one blob', async () => {
    const other = new OtherCpu(bench.sandbox);
    const results: Measured[] = [];
    for (const blob of blobs) {
      const name = blob.size >= GiB ? `${blob.size / GiB} GiB` : `${blob.size / MiB} MiB`;
      const run = async (label: string, server: Server, runs: number, settle?: () => Promise<void>): Promise<void> => {
        bench.registry.clearRequests();
        const cpuBefore = cpuSeconds(server.pid);
        const transfers: Transfer[] = [];
        for (let i = 0; i < runs; i++) transfers.push(await download(bench.sandbox, server.endpoint, blob.path, { bytes: blob.size }));
        await settle?.();
        const cpu = cpuSeconds(server.pid) - cpuBefore;
        await bench.registry.sync();
        const upstreamGets = bench.registry.requests().filter((r) => r.method === 'GET' && r.path === blob.path).length;
        results.push({ blob: name, label, runs: transfers, cpuPerGiB: cpu / ((runs * blob.size) / GiB), upstreamGets });
      };
      const committed = async (): Promise<void> => {
        await bench.layover!.waitForLog((line) => line.msg === 'cache fill committed' && line.digest === blob.digest, 60_000);
      };
      await run('(a) registry, direct', servers.direct, WARM_RUNS);
      await run('(b) Layover, cold (miss + fill)', servers.layover, 1, committed);
      await run('(c) Layover, warm (hit)', servers.layover, WARM_RUNS);
      await run('(d) registry proxy, cold', servers.proxy, 1, () => servers.proxy.waitForBlob(blob.digest, blob.size));
      await run('(d) registry proxy, warm', servers.proxy, WARM_RUNS);
    }

    const rows = results.map((m) => {
      const reference = results.find((r) => r.blob === m.blob)!;
      const speeds = m.runs.map((t) => mbPerSecond(t.bytes, t.seconds));
      const speed = median(speeds);
      const spread = speeds.length > 1 ? `${fixed(Math.min(...speeds), 0)}–${fixed(Math.max(...speeds), 0)}` : '';
      return [
        m.blob,
        m.label,
        `${m.runs.length}`,
        fixed(median(m.runs.map((t) => t.seconds)), 3),
        fixed(speed, 0),
        spread,
        ratio(speed, median(reference.runs.map((t) => mbPerSecond(t.bytes, t.seconds)))),
        fixed(m.cpuPerGiB),
        m === reference ? '(is upstream)' : `${m.upstreamGets}`,
      ];
    });
    printTable(
      'pull-throughput: one client, one blob, curl over TLS (HTTP/1.1)',
      ['blob', 'case', 'runs', 's (median)', 'MB/s', 'MB/s range', 'vs (a)', 'server CPU-s/GiB', 'upstream GETs'],
      rows,
      [
        interference(other.read()),
        'CPU-s/GiB is the serving process only: the upstream registry for (a), Layover for (b, c), the proxy registry for (d).',
        'Upstream GETs: requests for the blob in the upstream registry\'s access log during the case.',
      ],
    );
    for (const m of results) expect(m.runs.every((t) => t.status === 200)).toBe(true);
  });
});
