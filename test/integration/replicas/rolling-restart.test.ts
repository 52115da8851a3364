/**
 * Issue 11, restarts without an outage: three `layover serve` processes (each its own data dir and
 * file store, one CA) behind haproxy in TCP mode (TLS passes through), which checks each replica's
 * /readyz over HTTP. 20 clients (./pull-loop-client.ts) pull images through haproxy in a loop, every
 * body checked against its digest, while every replica in turn gets SIGTERM, exits, starts again on
 * its data dir and becomes ready. Not one pull may fail: a stopping replica says not-ready at once,
 * goes on serving for SHUTDOWN_DRAIN with `Connection: close` on every answer (so clients move to
 * another replica after their answer), then stops accepting, finishes what is in flight and exits.
 *
 * Everything runs in a network namespace of its own (test/bench/sandbox.ts): the registry on
 * 127.0.0.2, its resolver on 127.0.0.3, the replicas on 127.0.0.11-13 (:443 and :80), haproxy on 127.0.0.1:443.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, startBench } from '../../bench/bench.js';
import { type LayoverProcess, startLayoverProcess } from '../../bench/layover-process.js';
import { runNodeScript } from '../../bench/node-script.js';
import { type Haproxy, startHaproxy } from './haproxy.js';
import type { PullJob, PullSummary } from './pull-loop-client.js';
import { pullJobFor, summaryWithoutFailures } from './pull-job.js';

const REPLICAS: Record<string, string> = { r1: '127.0.0.11', r2: '127.0.0.12', r3: '127.0.0.13' };
const LOAD_BALANCER = '127.0.0.1';
const CLIENTS = 20;
/** Long enough for haproxy (a check every CHECK_MS, out after one failure) to stop sending new connections. */
const DRAIN = '2s';
const CHECK_MS = 300;
const CLIENT = join(import.meta.dirname, 'pull-loop-client.ts');

let bench: Bench;
let haproxy: Haproxy;
const replicas = new Map<string, LayoverProcess>();
const dataDirs = new Map<string, string>();

function startReplica(name: string): Promise<LayoverProcess> {
  const address = REPLICAS[name]!;
  return startLayoverProcess(bench.sandbox, {
    upstreamCa: bench.ca.certFile,
    dataDir: dataDirs.get(name),
    flags: {
      https: `${address}:443`,
      http: `${address}:80`,
      dns: 'off',
      proxy: 'off',
      // One CA for all: clients trust the service, whichever replica answers.
      'ca-dir': join(bench.sandbox.dir, 'layover-ca'),
      advertise: LOAD_BALANCER,
      'shutdown-drain': DRAIN,
      'shutdown-grace': '20s',
      'log-level': 'info',
    },
  });
}

beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'docker', 'multi'], layover: false });
  // One after another: the first creates the CA the others load.
  for (const name of Object.keys(REPLICAS)) {
    const replica = await startReplica(name);
    replicas.set(name, replica);
    dataDirs.set(name, replica.dataDir);
  }
  haproxy = await startHaproxy(bench.sandbox, { listen: `${LOAD_BALANCER}:443`, servers: REPLICAS, checkIntervalMs: CHECK_MS });
  for (const name of Object.keys(REPLICAS)) await haproxy.waitFor(name, true);
}, 180_000);
afterAll(() => bench?.close());

function pullJob(stopFile: string): PullJob {
  return pullJobFor(bench, { caFile: replicas.get('r1')!.caFile, origin: `https://${LOAD_BALANCER}:443`, clients: CLIENTS, stopFile, maxSeconds: 90 });
}

it(`every replica restarted in turn while ${CLIENTS} clients pull through haproxy: 0 failed pulls`, async () => {
  const stopFile = join(bench.sandbox.dir, 'stop-pulling');
  const pulling = runNodeScript<PullSummary>(bench.sandbox, CLIENT, pullJob(stopFile), { timeoutMs: 120_000 });
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const restarts: Array<{ name: string; exitCode: number | null; closingLogged: boolean }> = [];
  try {
    // Let every client reach a replica first, with connections kept alive.
    await pause(1500);
    for (const name of Object.keys(REPLICAS)) {
      const old = replicas.get(name)!;
      const exited = new Promise<number | null>((resolve) => old.child.once('exit', (code) => resolve(code)));
      old.child.kill('SIGTERM');
      await haproxy.waitFor(name, false);
      const exitCode = await exited;
      restarts.push({ name, exitCode, closingLogged: old.logs().some((line) => line.msg === 'drain over: accepting no new connections') });
      replicas.set(name, await startReplica(name));
      await haproxy.waitFor(name, true);
      await pause(1000);
    }
  } finally {
    writeFileSync(stopFile, '');
  }
  const summary = await summaryWithoutFailures(pulling, CLIENTS * 3);
  console.info(`rolling restart: ${JSON.stringify(summary)}; restarts ${JSON.stringify(restarts)}`);
  // Each replica stopped on its own terms (exit 0: everything finished within the grace) after its drain.
  expect(restarts).toEqual(Object.keys(REPLICAS).map((name) => ({ name, exitCode: 0, closingLogged: true })));
  // Clients were on stopping replicas and were told to leave: the test tested what it means to.
  expect(summary.closingAnswers).toBeGreaterThan(0);
  // After the restarts every replica serves again: haproxy sends to all three.
  expect(Object.values(await haproxy.status()).every((state) => state.startsWith('UP'))).toBe(true);
}, 120_000);
