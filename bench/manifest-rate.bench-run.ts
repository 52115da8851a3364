/**
 * manifest-rate: requests per second for one small manifest by digest (the `oci` test image's, about
 * 0.5 KB), already cached, over keep-alive TLS connections: from the registry directly (reference),
 * from Layover (a cache hit), from the distribution registry in pull-through mode (stored locally after
 * the first GET) and from nginx proxy_cache (lib/nginx.ts); and, for comparison only (not a target's
 * reference), from a second nginx that also writes an access log as docker-registry-proxy does. The
 * load is h2load over HTTP/1.1 (`--h1`, nghttp2-client), as issue 13's table was measured:
 * CONNECTIONS keep-alive connections, WARM_UP_SECONDS of warm-up (the JIT settles, TLS sessions are
 * up), then SECONDS measured; `--connect-to` pins the
 * address, so no DNS is involved (h2load does not verify certificates; curl checks each server once
 * before). Printed: req/s and its ratio to the reference, the mean and spread of the request time, the
 * serving processes' CPU microseconds per request (nginx: master and workers), and the upstream
 * requests the run caused (0 for a cache that works). The servers take turns for ROUNDS rounds, so
 * that a machine slowing down or speeding up for a minute (10–20% here) moves them all rather than
 * the one measured then: per server the median round's req/s and time, the range over the rounds,
 * CPU and upstream requests over all of them. Under the table, issue 13's target: Layover ≥ 1.00× the
 * distribution proxy and ≥ 0.60× nginx. h2load runs on the same two cores as the server. About 4
 * minutes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { download } from './lib/curl.js';
import { OtherCpu } from './lib/process-stats.js';
import { fixed, interference, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { startNginx } from './lib/nginx.js';
import { layoverOptions, type Server, serverCpuSeconds, type Servers, startServers } from './lib/servers.js';
import { atLeast, type Target, targetLines, times } from './lib/targets.js';

const CONNECTIONS = 16;
const SECONDS = 10;
const WARM_UP_SECONDS = 2;
const ROUNDS = 3;

interface LoadResult {
  done: number;
  succeeded: number;
  failed: number;
  perSecond: number;
  /** Mean and standard deviation of the request time, in ms. */
  meanMs: number;
  sdMs: number;
}

describe('manifest-rate', () => {
  let bench: Bench;
  let servers: Servers;
  let loggingNginx: Server;

  beforeAll(async () => {
    await sampleMachineLoad();
    bench = await startBench({ images: ['oci'], layover: layoverOptions() });
    servers = await startServers(bench);
    loggingNginx = await startNginx(bench, { accessLog: true });
  });
  afterAll(() => bench?.close());

  test('a cached manifest by digest', async () => {
    const other = new OtherCpu(bench.sandbox);
    const image = bench.images.oci!;
    const path = `/v2/${image.repository}/manifests/${image.digest}`;
    const h2load = async (server: Server): Promise<LoadResult> => {
      const url = `https://${server.endpoint.host}${path}`;
      const run = await bench.sandbox.exec(
        'h2load',
        ['--h1', '-c', `${CONNECTIONS}`, '-D', `${SECONDS}`, '--warm-up-time', `${WARM_UP_SECONDS}`, '--connect-to', `${server.endpoint.address}:443`, '-H', `Accept: ${image.mediaType}`, url],
        { timeoutMs: (SECONDS + WARM_UP_SECONDS + 30) * 1000 },
      );
      const requests = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/m.exec(run.stdout);
      const status2xx = Number(/^status codes: (\d+) 2xx/m.exec(run.stdout)?.[1] ?? 0);
      const time = /^time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/m.exec(run.stdout);
      const toMs = (value: string | undefined, unit: string | undefined): number => Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
      const result = {
        done: Number(requests?.[3] ?? 0),
        succeeded: Number(requests?.[4] ?? 0),
        failed: Number(requests?.[5] ?? 0) + Number(requests?.[6] ?? 0),
        perSecond: Number(/^finished in [\d.]+\w+, ([\d.]+) req\/s/m.exec(run.stdout)?.[1] ?? 0),
        meanMs: toMs(time?.[1], time?.[2]),
        sdMs: toMs(time?.[3], time?.[4]),
      };
      if (run.code !== 0 || result.done === 0 || result.failed > 0 || status2xx !== result.done) {
        throw new Error(`h2load against ${url} failed (${run.code}):\n${run.stdout}\n${run.stderr}`);
      }
      return result;
    };

    const order = [servers.direct, servers.layover, servers.proxy, servers.nginx, loggingNginx];
    for (const server of order) {
      // The first GET fills the caches (Layover, the proxy registry, nginx) and checks the certificate.
      await download(bench.sandbox, server.endpoint, path, { bytes: Buffer.byteLength(image.raw), headers: { accept: image.mediaType } });
    }
    await bench.registry.sync();
    const runs = new Map<Server, { results: LoadResult[]; cpuSeconds: number; upstream: number }>(order.map((server) => [server, { results: [], cpuSeconds: 0, upstream: 0 }]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of order) {
        const run = runs.get(server)!;
        bench.registry.clearRequests();
        // The warm-up's CPU counts too (h2load has no pause between): per request of the whole run.
        const cpuBefore = serverCpuSeconds(server);
        run.results.push(await h2load(server));
        run.cpuSeconds += serverCpuSeconds(server) - cpuBefore;
        await bench.registry.sync();
        run.upstream += bench.registry.requests().length;
      }
    }

    const rows: string[][] = [];
    const rates = new Map<Server, number>();
    for (const server of order) {
      const { results, cpuSeconds, upstream } = runs.get(server)!;
      const perSecond = results.map((result) => result.perSecond);
      const middle = [...results].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(results.length / 2)]!;
      const done = results.reduce((sum, result) => sum + result.done, 0);
      rates.set(server, middle.perSecond);
      rows.push([
        server.label,
        `${middle.done}`,
        fixed(middle.perSecond, 0),
        `${fixed(Math.min(...perSecond), 0)}–${fixed(Math.max(...perSecond), 0)}`,
        ratio(middle.perSecond, rates.get(servers.direct)!),
        fixed(middle.meanMs, 2),
        fixed(middle.sdMs, 2),
        fixed((cpuSeconds / done) * 1e6, 0),
        server === servers.direct ? '(is upstream)' : `${upstream}`,
      ]);
      for (const result of results) expect(result.succeeded).toBe(result.done);
    }
    const layover = rates.get(servers.layover)!;
    const targets: Target[] = [
      atLeast('cached manifest by digest, Layover vs the distribution proxy', layover / rates.get(servers.proxy)!, 1, times),
      atLeast('cached manifest by digest, Layover vs nginx proxy_cache', layover / rates.get(servers.nginx)!, 0.6, times),
    ];
    printTable(
      `manifest-rate: one cached manifest by digest, h2load --h1, ${CONNECTIONS} keep-alive connections, ${SECONDS} s`,
      ['server', 'requests', 'req/s', 'req/s range', 'vs direct', 'mean ms', 'sd ms', 'server CPU µs/req', 'upstream requests'],
      rows,
      [
        interference(other.read()),
        `Rounds: ${ROUNDS}, the servers taking turns; requests, req/s and times of each server's median round, the range over its rounds. CPU per request and upstream requests over all rounds; CPU counts the warm-ups' CPU as well, so it is an upper bound.`,
        `nginx, access log: nginx as above, also writing one JSON line per request to a pipe as docker-registry-proxy's caching layer does (its \`tweaked\` format, unbuffered), like Layover's request lines; Layover vs it: ${ratio(layover, rates.get(loggingNginx)!)}. The targets compare with nginx without an access log.`,
        ...targetLines(targets),
      ],
    );
  });
});
