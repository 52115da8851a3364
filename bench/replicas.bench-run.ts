/**
 * replicas: the same load on 1 and on 3 Layover replicas in shared mode, behind one haproxy (TCP mode,
 * TLS passed through, round robin per connection; test/integration/replicas/haproxy.ts). The fleet is
 * test/integration/replicas/fleet.ts: three `layover serve` processes over one bucket (s3rver, the
 * S3 stand-in) and one Redis index, in the bench's network namespace. For the 1-replica case r2 and
 * r3 are put in maintenance (haproxy's admin socket), so the load balancer, bucket and index are the same
 * in both cases.
 *   cold, same blob    CLIENTS curl clients at once on one uncached blob: wall time and upstream blob
 *                      GETs (one per digest for the fleet is the goal of issue 11; replicas that fetch on
 *                      their own show up to one each);
 *   warm, many blobs   CLIENTS clients, each pulling ROUNDS cached blobs one after another (all hits):
 *                      aggregate MB/s, against 1 replica and against the registry serving the same load.
 * CPU: all replicas together, and s3rver (a Node fake S3, on the same two cores: it serves every hit's
 * bytes to the replicas), per GiB sent to clients. About 3 minutes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { INTERCEPTED_HOST, REGISTRY_ADDRESS, DIRECT_HOST } from '../test/bench/bench.js';
import { type Haproxy, startHaproxy } from '../test/integration/replicas/haproxy.js';
import { type Fleet, startFleet } from '../test/integration/replicas/fleet.js';
import { MiB, GiB, type PushedBlob, pushBlob } from './lib/blobs.js';
import { download, type Endpoint } from './lib/curl.js';
import { serveOnly } from './lib/haproxy-admin.js';
import { cpuSeconds, findPid, OtherCpu } from './lib/process-stats.js';
import { fixed, interference, mbPerSecond, printTable, ratio, sampleMachineLoad } from './lib/report.js';

const CLIENTS = 6;
const ROUNDS = 2;
const BLOB_SIZE = 128 * MiB;
const REPOSITORY = 'bench/replicas';
const LOAD_BALANCER = '127.0.0.1';

interface Measured {
  load: 'cold, same blob' | 'warm, many blobs';
  setup: string;
  replicas: number;
  seconds: number;
  bytes: number;
  upstreamGets: number;
  layoverCpu: number;
  s3Cpu: number;
}

describe('replicas', () => {
  let fleet: Fleet;
  let haproxy: Haproxy;
  let cold: PushedBlob[];
  let warm: PushedBlob[];

  beforeAll(async () => {
    await sampleMachineLoad();
    fleet = await startFleet({ index: 'redis', replicas: 3, images: [], flags: { 'log-level': 'info' } });
    haproxy = await startHaproxy(fleet.bench.sandbox, {
      listen: `${LOAD_BALANCER}:443`,
      servers: Object.fromEntries(fleet.names.map((name) => [name, fleet.address(name)])),
      checkIntervalMs: 1000,
    });
    for (const name of fleet.names) await haproxy.waitFor(name, true);
    cold = [];
    for (const replicas of [1, 3]) cold.push(await pushBlob(fleet.bench, REPOSITORY, `replicas cold ${replicas}`, BLOB_SIZE));
    warm = [];
    for (let i = 0; i < CLIENTS; i++) warm.push(await pushBlob(fleet.bench, REPOSITORY, `replicas warm ${i}`, BLOB_SIZE));
  });
  afterAll(() => fleet?.close());

  test(`${CLIENTS} clients on 1 and on 3 replicas`, async () => {
    const { sandbox } = fleet.bench;
    const other = new OtherCpu(sandbox);
    const s3Pid = findPid(sandbox, 's3-server.mjs');
    const registryPid = findPid(sandbox, `registry-${REGISTRY_ADDRESS}/config.yml`);
    const balanced: Endpoint = { host: INTERCEPTED_HOST, address: LOAD_BALANCER, caFile: fleet.caFile };
    const direct: Endpoint = { host: DIRECT_HOST, address: REGISTRY_ADDRESS, caFile: fleet.bench.ca.certFile };
    const layoverCpu = (): number => fleet.names.reduce((sum, name) => sum + cpuSeconds(fleet.replica(name).child.pid!), 0);
    const results: Measured[] = [];

    /** Every replica serves `blobs` as hits: their fills (wherever they ran) have committed. */
    const cachedEverywhere = async (blobs: PushedBlob[]): Promise<void> => {
      for (const name of fleet.names) await fleet.waitUntilHit(name, { repository: REPOSITORY, blobs }, 120_000);
    };

    const measure = async (load: Measured['load'], setup: string, replicas: number, endpoint: Endpoint, perClient: PushedBlob[][], settle?: () => Promise<void>): Promise<void> => {
      await fleet.clearUpstreamRequests();
      const cpuBefore = { layover: layoverCpu(), s3: cpuSeconds(s3Pid), registry: cpuSeconds(registryPid) };
      const started = performance.now();
      await Promise.all(perClient.map(async (blobs) => {
        for (const blob of blobs) await download(sandbox, endpoint, blob.path, { bytes: blob.size });
      }));
      const seconds = (performance.now() - started) / 1000;
      await settle?.();
      const digests = new Set(perClient.flat().map((b) => b.digest));
      results.push({
        load,
        setup,
        replicas,
        seconds,
        bytes: perClient.flat().reduce((sum, b) => sum + b.size, 0),
        upstreamGets: await fleet.upstreamBlobGets(digests),
        layoverCpu: endpoint === direct ? cpuSeconds(registryPid) - cpuBefore.registry : layoverCpu() - cpuBefore.layover,
        s3Cpu: endpoint === direct ? 0 : cpuSeconds(s3Pid) - cpuBefore.s3,
      });
    };

    // The warm set, cached once through r1 (untimed); every replica knows it over the shared index.
    for (const blob of warm) await download(sandbox, { host: INTERCEPTED_HOST, address: fleet.address('r1'), caFile: fleet.caFile }, blob.path, { bytes: blob.size });
    await cachedEverywhere(warm);
    const warmLoad = Array.from({ length: CLIENTS }, (_, client) => Array.from({ length: ROUNDS }, (_, round) => warm[(client + round) % warm.length]!));

    await measure('warm, many blobs', 'registry (direct)', 0, direct, warmLoad);
    for (const [i, replicas] of [1, 3].entries()) {
      await serveOnly(sandbox, haproxy, fleet.names, fleet.names.slice(0, replicas));
      const blob = cold[i]!;
      const label = `${replicas} replica${replicas > 1 ? 's' : ''}`;
      await measure('cold, same blob', label, replicas, balanced, Array.from({ length: CLIENTS }, () => [blob]), () => cachedEverywhere([blob]));
      await measure('warm, many blobs', label, replicas, balanced, warmLoad);
    }

    const rows = results.map((m) => {
      const oneReplica = results.find((r) => r.load === m.load && r.replicas === 1);
      const reference = results.find((r) => r.load === m.load && r.replicas === 0);
      const rate = mbPerSecond(m.bytes, m.seconds);
      return [
        m.load,
        m.setup,
        fixed(m.seconds, 1),
        fixed(rate, 0),
        oneReplica && m.replicas > 0 ? ratio(rate, mbPerSecond(oneReplica.bytes, oneReplica.seconds)) : '',
        reference ? ratio(rate, mbPerSecond(reference.bytes, reference.seconds)) : '',
        m.replicas === 0 ? '(is upstream)' : `${m.upstreamGets}`,
        fixed(m.layoverCpu / (m.bytes / GiB)),
        m.replicas === 0 ? '' : fixed(m.s3Cpu / (m.bytes / GiB)),
      ];
    });
    printTable(
      `replicas: ${CLIENTS} clients through haproxy, ${BLOB_SIZE / MiB} MiB blobs (warm: ${ROUNDS} each), curl over TLS (HTTP/1.1), shared mode (s3rver + Redis)`,
      ['load', 'server', 'total s', 'MB/s (all)', 'vs 1 replica', 'vs direct', 'upstream GETs', 'CPU-s/GiB', 's3rver CPU-s/GiB'],
      rows,
      [
        interference(other.read()),
        'Upstream GETs: requests for these blobs in the upstream registry\'s access log during the case (cold: one blob; warm: all hits).',
        'CPU-s/GiB: the registry\'s for direct, all replicas together otherwise (fills included), per GiB sent to clients; s3rver serves the hits\' bytes to the replicas (and takes the fills\') on the same two cores.',
      ],
    );
    const find = (load: Measured['load'], replicas: number): Measured => results.find((m) => m.load === load && m.replicas === replicas)!;
    expect(find('cold, same blob', 1).upstreamGets).toBe(1);
    expect(find('warm, many blobs', 1).upstreamGets).toBe(0);
    expect(find('warm, many blobs', 3).upstreamGets).toBe(0);
  });
});
