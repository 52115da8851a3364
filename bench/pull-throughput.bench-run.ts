/**
 * pull-throughput: one client downloads one large blob (64 MiB, then 1 GiB) with
 * `curl --http1.1 -o /dev/null` over TLS, from
 *   (a) the upstream distribution registry directly — the reference,
 *   (b) Layover, cold: a miss, the download streams to the client while Layover fills its cache,
 *   (c) Layover, warm: a hit, served from the cache,
 *   (d) the distribution registry in pull-through mode, cold and then warm (after its background copy
 *       has committed),
 *   (e) nginx proxy_cache (configured like the nginx-based registry proxies, lib/nginx.ts), cold and
 *       then warm (after its cache file has committed).
 * Warm and direct cases run WARM_RUNS times on one blob, taking turns (direct, Layover, registry proxy,
 * nginx, the order rotating every round); cold cases COLD_RUNS times, each on a blob of its own (pushed
 * for the purpose, so every proxy meets each one cold), one server after the other; each case reports
 * the median.
 * Printed per case: seconds, MB/s
 * (decimal), the ratio of MB/s to (a), the ratio to the best of the two peers (d, e) at the same
 * temperature, a cold case's wall time over (a)'s, curl's time to the first byte, a cold case's
 * first byte split on the wire into the proxy's own share and the upstream's (lib/wire-first-byte.ts),
 * the serving processes' CPU seconds per GiB sent (upstream registry for (a), Layover for (b, c), the proxy
 * registry for (d), nginx's master and workers for (e); /proc/<pid>/stat utime+stime, cold cases
 * measured until the fill has committed), how busy the client was (curl's CPU over its time) and the
 * machine's cores (everything on them, while the downloads ran), and the upstream blob GETs per
 * download. Under the table,
 * what this machine takes to write 1 GiB to a new file and to hash it (lib/cold-floor.ts, measured
 * after the cases), and issue 13's targets for the 1 GiB blob. Everything runs in the bench's network namespace
 * (test/bench), removed afterwards. About 2 minutes.
 */
import { cpus } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, REGISTRY_ADDRESS, startBench } from '../test/bench/bench.js';
import { GiB, MiB, type PushedBlob, pushBlob } from './lib/blobs.js';
import { coldFloor } from './lib/cold-floor.js';
import { download, type Transfer } from './lib/curl.js';
import { type FirstByteShares, firstByteShares, startWireCapture } from './lib/wire-first-byte.js';
import { machineBusySeconds, OtherCpu } from './lib/process-stats.js';
import { fixed, interference, mbPerSecond, median, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { layoverOptions, type Server, serverCpuSeconds, type Servers, startServers } from './lib/servers.js';
import { atLeast, atMost, ms, type Target, targetLines, times } from './lib/targets.js';

const SIZES = [64 * MiB, GiB];
const WARM_RUNS = 5;
/** A single cold download's first byte moved by ±3 ms between runs: as much as the target allows. */
const COLD_RUNS = 3;
const REPOSITORY = 'bench/throughput';

type Temperature = 'direct' | 'cold' | 'warm';

/** A case's downloads as they are made. */
interface Case {
  label: string;
  server: Server;
  temperature: Temperature;
  transfers: Transfer[];
  shares: FirstByteShares[];
  cpu: number;
  busy: number;
  wall: number;
  upstreamGets: number;
}

function newCase(label: string, server: Server, temperature: Temperature): Case {
  return { label, server, temperature, transfers: [], shares: [], cpu: 0, busy: 0, wall: 0, upstreamGets: 0 };
}

interface Measured {
  blob: string;
  label: string;
  server: Server;
  temperature: Temperature;
  runs: Transfer[];
  /** A cold case's first byte, per run, split on the wire. */
  shares: FirstByteShares[];
  cpuPerGiB: number;
  /** The share of all cores busy while the case's downloads ran (curl's start-up included). */
  machineBusy: number;
  upstreamGets: number;
}

describe('pull-throughput', () => {
  let bench: Bench;
  let servers: Servers;
  /** Per size, COLD_RUNS blobs: one for each cold run; warm and direct cases use the first. */
  let blobSets: PushedBlob[][];

  beforeAll(async () => {
    await sampleMachineLoad();
    bench = await startBench({ images: [], layover: layoverOptions() });
    servers = await startServers(bench);
    blobSets = [];
    for (const size of SIZES) {
      const set: PushedBlob[] = [];
      for (let i = 0; i < COLD_RUNS; i++) set.push(await pushBlob(bench, REPOSITORY, `pull-throughput ${size} ${i}`, size));
      blobSets.push(set);
    }
  });
  afterAll(() => bench?.close());

  test('one client, one blob', async () => {
    const other = new OtherCpu(bench.sandbox);
    const results: Measured[] = [];
    for (const set of blobSets) {
      const blob = set[0]!;
      const name = blobName(blob.size);
      /** One download of `path` for case `c`, then `settle`: its CPU counts until `settle` is done, its upstream GETs until then too. */
      const downloadOnce = async (c: Case, path: PushedBlob, settle?: (blob: PushedBlob) => Promise<void>): Promise<void> => {
        bench.registry.clearRequests();
        const cpuBefore = serverCpuSeconds(c.server);
        const capture = c.temperature === 'cold' ? await startWireCapture(bench.sandbox) : undefined;
        const busyBefore = machineBusySeconds();
        const started = performance.now();
        c.transfers.push(await download(bench.sandbox, c.server.endpoint, path.path, { bytes: path.size }));
        c.wall += (performance.now() - started) / 1000;
        c.busy += machineBusySeconds() - busyBefore;
        if (capture) {
          const split = firstByteShares(await capture.stop(), c.server.endpoint.address, REGISTRY_ADDRESS);
          // A peer's first byte may lie beyond the packets captured (the registry proxy's HTTP/2 frames).
          if (!split && c.server === servers.layover) throw new Error(`${c.label}: the capture of ${path.path} does not show the first byte's way`);
          if (split) c.shares.push(split);
        }
        await settle?.(path);
        c.cpu += serverCpuSeconds(c.server) - cpuBefore;
        await bench.registry.sync();
        c.upstreamGets += bench.registry.requests().filter((r) => r.method === 'GET' && r.path === path.path).length;
      };
      const measured = (c: Case): Measured => {
        const downloads = c.transfers.length;
        return {
          blob: name,
          label: c.label,
          server: c.server,
          temperature: c.temperature,
          runs: c.transfers,
          shares: c.shares,
          cpuPerGiB: c.cpu / ((downloads * blob.size) / GiB),
          machineBusy: c.busy / (c.wall * cpus().length),
          upstreamGets: c.upstreamGets / downloads,
        };
      };
      const committed = async (cold: PushedBlob): Promise<void> => {
        await bench.layover!.waitForLog((line) => line.msg === 'cache fill committed' && line.digest === cold.digest, 60_000);
      };
      const cases: Case[] = [];
      // Cold cases one server after the other, each blob measured until the server's copy has committed.
      for (const [label, server, settle] of [
        ['(b) Layover, cold (miss + fill)', servers.layover, committed],
        ['(d) registry proxy, cold', servers.proxy, (cold: PushedBlob) => servers.proxy.waitForBlob(cold.digest, cold.size)],
        ['(e) nginx proxy_cache, cold', servers.nginx, (cold: PushedBlob) => servers.nginx.waitForCached(cold.path, cold.size)],
      ] as const) {
        const c = newCase(label, server, 'cold');
        for (const path of set) await downloadOnce(c, path, settle);
        cases.push(c);
      }
      // The direct and warm cases take turns, the order rotating every round: the machine's drift
      // over the minutes of a run falls on all of them alike.
      const turns = [
        newCase('(a) registry, direct', servers.direct, 'direct'),
        newCase('(c) Layover, warm (hit)', servers.layover, 'warm'),
        newCase('(d) registry proxy, warm', servers.proxy, 'warm'),
        newCase('(e) nginx proxy_cache, warm', servers.nginx, 'warm'),
      ];
      for (let round = 0; round < WARM_RUNS; round++) {
        const first = round % turns.length;
        for (const c of [...turns.slice(first), ...turns.slice(0, first)]) await downloadOnce(c, blob);
      }
      cases.push(...turns);
      results.push(...cases.map(measured).sort((a, b) => a.label.localeCompare(b.label)));
    }

    const floor = await coldFloor(bench.sandbox.dir, GiB);

    const speed = (m: Measured): number => median(m.runs.map((t) => mbPerSecond(t.bytes, t.seconds)));
    const wall = (m: Measured): number => median(m.runs.map((t) => t.seconds));
    const firstByte = (m: Measured): number => median(m.runs.map((t) => t.firstByteSeconds));
    const ownShare = (m: Measured): number => median(m.shares.map((split) => split.proxyMs));
    const upstreamShare = (m: Measured): number => median(m.shares.map((split) => split.upstreamMs));
    const find = (blob: string, server: Server, temperature: Temperature): Measured =>
      results.find((r) => r.blob === blob && r.server === server && r.temperature === temperature)!;
    const bestPeer = (m: Measured): number => Math.max(speed(find(m.blob, servers.proxy, m.temperature)), speed(find(m.blob, servers.nginx, m.temperature)));
    const rows = results.map((m) => {
      const reference = find(m.blob, servers.direct, 'direct');
      const speeds = m.runs.map((t) => mbPerSecond(t.bytes, t.seconds));
      const spread = speeds.length > 1 ? `${fixed(Math.min(...speeds), 0)}–${fixed(Math.max(...speeds), 0)}` : '';
      return [
        m.blob,
        m.label,
        `${m.runs.length}`,
        fixed(wall(m), 3),
        fixed(speed(m), 0),
        spread,
        ratio(speed(m), speed(reference)),
        m.temperature === 'direct' ? '' : ratio(speed(m), bestPeer(m)),
        m.temperature === 'cold' ? ratio(wall(m), wall(reference)) : '',
        fixed(firstByte(m) * 1000, 1),
        m.shares.length > 0 ? `${fixed(ownShare(m), 1)} / ${fixed(upstreamShare(m), 1)}${m.shares.length < m.runs.length ? ` (${m.shares.length} of ${m.runs.length} runs)` : ''}` : '',
        fixed(m.cpuPerGiB),
        percent(median(m.runs.map((t) => t.clientCpuSeconds / t.seconds))),
        percent(m.machineBusy),
        m === reference ? '(is upstream)' : fixed(m.upstreamGets, Number.isInteger(m.upstreamGets) ? 0 : 1),
      ];
    });

    const big = blobName(GiB);
    const direct = find(big, servers.direct, 'direct');
    const layoverCold = find(big, servers.layover, 'cold');
    const layoverWarm = find(big, servers.layover, 'warm');
    const targets: Target[] = [
      atLeast('warm 1 GiB, 1 client, Layover vs the best of nginx and distribution', speed(layoverWarm) / bestPeer(layoverWarm), 1, times),
      atMost('cold 1 GiB, Layover\'s wall time vs a direct download', wall(layoverCold) / wall(direct), 1.5, times),
      atMost('cold 1 GiB, Layover\'s own share of its first byte\'s wait, on the wire', ownShare(layoverCold), 5, ms),
    ];
    printTable(
      'pull-throughput: one client, one blob, curl over TLS (HTTP/1.1)',
      ['blob', 'case', 'runs', 's (median)', 'MB/s', 'MB/s range', 'vs (a)', 'vs best peer', 'cold time vs (a)', 'first byte ms', 'first byte own / upstream ms', 'server CPU-s/GiB', 'client busy', 'CPUs busy', 'upstream GETs per download'],
      rows,
      [
        interference(other.read()),
        'CPU-s/GiB is the serving processes\' only: the upstream registry for (a), Layover for (b, c), the proxy registry for (d), nginx\'s master and workers for (e).',
        'Client busy: curl\'s user and system CPU (its start-up included) over its time_total (median run); near 100% the client sets the pace, whichever server it downloads from. CPUs busy: the busy time of all cores over the case\'s downloads, everything on the machine counted; near 100% the servers, the upstream and the client share out what the cores have.',
        'vs best peer: MB/s over the better of (d) and (e) at the same temperature (cold with cold, warm with warm). First byte: curl\'s time_starttransfer (TLS handshake included).',
        'First byte own / upstream (cold cases, the medians, on the wire): from the client\'s request to the first byte sent back, split into the upstream\'s part (the proxy\'s request to the upstream\'s first answer) and the proxy\'s own (the rest, a new upstream connection\'s handshake included). The registry proxy asks over HTTP/2 and first with a HEAD: its split is approximate.',
        `Runs: direct and warm ${WARM_RUNS} downloads of one blob, taking turns in a rotating order, cold ${COLD_RUNS} of a blob each; the median run. Upstream GETs: requests for the case's blobs in the upstream registry's access log, per download.`,
        `This machine, after the cases: writing 1 GiB to a new file took ${fixed(floor.writeSeconds)} s (${ratio(floor.writeSeconds, wall(find(blobName(GiB), servers.direct, 'direct')))} the direct download), SHA-256 of 1 GiB on one thread ${fixed(floor.hashSeconds)} s: what a fill that stores and verifies its blob pays besides the transfer.`,
        ...targetLines(targets),
        `Other: cold 1 GiB, Layover's first byte minus the direct download's (curl's time_starttransfer, two connections and two upstream answers): ${ms((firstByte(layoverCold) - firstByte(direct)) * 1000)}.`,
        `Other: cold 1 GiB, Layover's own share split (medians, on the wire): ${fixed(median(layoverCold.shares.map((s) => s.beforeUpstreamMs)), 1)} ms from the client's request to the proxy's request upstream (a new upstream connection's handshake included), ${fixed(median(layoverCold.shares.map((s) => s.afterUpstreamMs)), 1)} ms from the upstream's answer to the client's first byte.`,
      ],
    );
    for (const m of results) expect(m.runs.every((t) => t.status === 200)).toBe(true);
  });
});

/** A share as a whole percentage; empty when it could not be measured (no `time` line from bash). */
function percent(share: number): string {
  return Number.isFinite(share) ? `${Math.round(100 * share)}%` : '';
}

function blobName(size: number): string {
  return size >= GiB ? `${size / GiB} GiB` : `${size / MiB} MiB`;
}
