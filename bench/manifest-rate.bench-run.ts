/**
 * manifest-rate: requests per second for one small manifest by digest (the `oci` test image's, about
 * 0.5 KB), already cached, over keep-alive TLS connections: from the registry directly (reference),
 * from Layover (a cache hit), and from the distribution registry in pull-through mode (stored locally
 * after the first GET). The load is ApacheBench (`ab -k`, from apache2-utils, already a test
 * dependency): CONNECTIONS connections, stopped after SECONDS or MAX_REQUESTS, whichever comes first,
 * after a short warm-up run. Printed: req/s and its ratio to the reference, latency percentiles, the
 * serving process's CPU microseconds per request, and the upstream requests the run caused (0 for a
 * cache that works). ab runs on the same two cores as the server. About 45 seconds.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { download } from './lib/curl.js';
import { cpuSeconds, OtherCpu } from './lib/process-stats.js';
import { fixed, interference, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { layoverOptions, PROXY_ADDRESS, PROXY_HOST, type Server, type Servers, startServers } from './lib/servers.js';

const CONNECTIONS = 16;
const SECONDS = 10;
const MAX_REQUESTS = 500_000;
const WARM_UP_REQUESTS = 2_000;

interface AbResult {
  complete: number;
  failed: number;
  non2xx: number;
  keepAlive: number;
  perSecond: number;
  percentiles: Record<string, number>;
}

describe('manifest-rate', () => {
  let bench: Bench;
  let servers: Servers;

  beforeAll(async () => {
    await sampleMachineLoad();
    // ab resolves names itself: give dnsmasq the proxy's name (Layover's DNS forwards it there).
    bench = await startBench({ images: ['oci'], extraRecords: { [PROXY_HOST]: [PROXY_ADDRESS] }, layover: layoverOptions() });
    servers = await startServers(bench);
  });
  afterAll(() => bench?.close());

  test('a cached manifest by digest', async () => {
    const other = new OtherCpu(bench.sandbox);
    const image = bench.images.oci!;
    const path = `/v2/${image.repository}/manifests/${image.digest}`;
    const ab = async (server: Server, args: string[]): Promise<AbResult> => {
      const url = `https://${server.endpoint.host}${path}`;
      const run = await bench.sandbox.exec('ab', ['-q', '-k', '-c', `${CONNECTIONS}`, '-H', `Accept: ${image.mediaType}`, ...args, url], {
        timeoutMs: (SECONDS + 30) * 1000,
      });
      const number = (label: string): number => Number(new RegExp(`^${label}:\\s+([\\d.]+)`, 'm').exec(run.stdout)?.[1] ?? 0);
      const percentiles = Object.fromEntries([...run.stdout.matchAll(/^\s+(\d+)%\s+(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
      const result = {
        complete: number('Complete requests'),
        failed: number('Failed requests'),
        non2xx: number('Non-2xx responses'),
        keepAlive: number('Keep-Alive requests'),
        perSecond: number('Requests per second'),
        percentiles,
      };
      if (run.code !== 0 || result.complete === 0 || result.failed > 0 || result.non2xx > 0) {
        throw new Error(`ab against ${url} failed (${run.code}):\n${run.stdout}\n${run.stderr}`);
      }
      return result;
    };

    const rows: string[][] = [];
    let reference: number | undefined;
    for (const server of [servers.direct, servers.layover, servers.proxy]) {
      // The first GET fills the caches (Layover, the proxy registry); the warm-up lets the JIT settle.
      await download(bench.sandbox, server.endpoint, path, { bytes: Buffer.byteLength(image.raw), headers: { accept: image.mediaType } });
      await ab(server, ['-n', `${WARM_UP_REQUESTS}`]);
      await bench.registry.sync();
      bench.registry.clearRequests();
      const cpuBefore = cpuSeconds(server.pid);
      const result = await ab(server, ['-t', `${SECONDS}`, '-n', `${MAX_REQUESTS}`]);
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      await bench.registry.sync();
      const upstream = server === servers.direct ? '(is upstream)' : `${bench.registry.requests().length}`;
      reference ??= result.perSecond;
      rows.push([
        server.label,
        `${result.complete}`,
        fixed(result.perSecond, 0),
        ratio(result.perSecond, reference),
        `${result.percentiles['50'] ?? '?'}`,
        `${result.percentiles['99'] ?? '?'}`,
        fixed((cpu / result.complete) * 1e6, 0),
        `${result.keepAlive === result.complete ? 'all' : result.keepAlive}`,
        upstream,
      ]);
      expect(result.complete).toBeGreaterThan(0);
    }
    printTable(
      `manifest-rate: one cached manifest by digest, ab -k, ${CONNECTIONS} connections, ${SECONDS} s`,
      ['server', 'requests', 'req/s', 'vs direct', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'keep-alive', 'upstream requests'],
      rows,
      [interference(other.read())],
    );
  });
});
