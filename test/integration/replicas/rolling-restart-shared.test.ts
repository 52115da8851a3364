/**
 * Issue 11, restarts without an outage in shared mode: three replicas (./fleet.ts) over one bucket
 * (s3rver) and one Redis index, fetching each blob once for the fleet, behind haproxy (TCP, /readyz
 * checks), with 20 clients (./pull-loop-client.ts) pulling every image in a loop through haproxy,
 * every body checked against its digest. Each replica in turn gets SIGTERM, drains, exits and starts
 * again on its data dir: not one pull may fail, although a stopping replica may hold fill leases that
 * the others' clients follow. (./rolling-restart.test.ts does the same over per-replica files.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runNodeScript } from '../../bench/node-script.js';
import { type Fleet, replicaAddress, startFleet } from './fleet.js';
import { type Haproxy, startHaproxy } from './haproxy.js';
import { pullJobFor, summaryWithoutFailures } from './pull-job.js';
import type { PullSummary } from './pull-loop-client.js';

const LOAD_BALANCER = '127.0.0.1';
const CLIENTS = 20;
const CHECK_MS = 300;
const CLIENT = join(import.meta.dirname, 'pull-loop-client.ts');

let fleet: Fleet;
let haproxy: Haproxy;
beforeAll(async () => {
  fleet = await startFleet({
    index: 'redis',
    images: ['oci', 'docker', 'multi'],
    // Long enough for haproxy (a check every CHECK_MS, out after one failure) to stop sending new connections.
    flags: { 'shutdown-drain': '2s', 'shutdown-grace': '20s', advertise: LOAD_BALANCER, 'log-level': 'info' },
  });
  haproxy = await startHaproxy(fleet.bench.sandbox, {
    listen: `${LOAD_BALANCER}:443`,
    servers: Object.fromEntries(fleet.names.map((name, i) => [name, replicaAddress(i)])),
    checkIntervalMs: CHECK_MS,
  });
  for (const name of fleet.names) await haproxy.waitFor(name, true);
}, 240_000);
afterAll(() => fleet?.close());

it(`every replica of a shared cache restarted in turn while ${CLIENTS} clients pull through haproxy: 0 failed pulls`, async () => {
  const stopFile = join(fleet.bench.sandbox.dir, 'stop-pulling-shared');
  const job = pullJobFor(fleet.bench, { caFile: fleet.caFile, origin: `https://${LOAD_BALANCER}:443`, clients: CLIENTS, stopFile, maxSeconds: 90 });
  const pulling = runNodeScript<PullSummary>(fleet.bench.sandbox, CLIENT, job, { timeoutMs: 120_000 });
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    await pause(1500);
    for (const name of fleet.names) {
      const stopping = fleet.stop(name);
      await haproxy.waitFor(name, false);
      await stopping;
      await fleet.start(name);
      await haproxy.waitFor(name, true);
      await pause(1000);
    }
  } finally {
    writeFileSync(stopFile, '');
  }
  const summary = await summaryWithoutFailures(pulling, CLIENTS * 3);
  console.info(`rolling restart, shared cache: ${JSON.stringify(summary)}`);
  expect(summary.closingAnswers).toBeGreaterThan(0);
  // The cache was shared: every blob went upstream at most once for the fleet, restarts included.
  const digests = Object.values(fleet.bench.images).flatMap((image) => image.blobs.map((b) => b.digest));
  for (const digest of new Set(digests)) expect(await fleet.upstreamBlobGets([digest]), digest).toBeLessThanOrEqual(1);
}, 180_000);
