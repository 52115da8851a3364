/**
 * tls-handshake: what a TLS handshake with Layover costs, for names it has never seen (a certificate
 * minted during the handshake), for names it has seen (the context cached), and with session
 * resumption (TLS 1.3 and TLS 1.2; a minted certificate, docker.proxy's, and no SNI at all).
 *
 * Layover intercepts `registry.test` and `*.tls.test`. A wildcard gives each parent its own
 * certificate (`h.n7.tls.test` gets `*.n7.tls.test`), so `h.n<i>.tls.test` is an unlimited supply of
 * names that each need a new one. The client is Node's `tls.connect` inside the sandbox
 * (./lib/tls-handshake-client.ts), one handshake at a time, timed from connect to `secureConnect`
 * and verified against Layover's CA; it shares the two cores with Layover. Printed: median and p90
 * handshake time, Layover's own mint time (its `minted TLS certificate` log line), Layover's CPU per
 * handshake, and for resumption the share of handshakes resumed and their time against full ones.
 * About 30 seconds.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { runNodeScript } from '../test/bench/node-script.js';
import { cpuSeconds, OtherCpu } from './lib/process-stats.js';
import { fixed, interference, median, printTable, sampleMachineLoad } from './lib/report.js';
import { layoverOptions } from './lib/servers.js';
import { atLeast, atMost, ms, targetLines, type Target } from './lib/targets.js';
import type { HandshakeJob, HandshakeResult } from './lib/tls-handshake-client.js';

const CLIENT = join(import.meta.dirname, 'lib', 'tls-handshake-client.ts');
const NEW_NAMES = 200;
const RESUMED = 100;
const WARM_UP = 20;
const NEW_NAME_GOAL_MS = 10;

type Version = HandshakeJob['version'];

interface Run {
  results: HandshakeResult[];
  /** Layover's CPU during the run, in µs per handshake. */
  cpuMicros: number;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};
const percent = (v: number): string => `${Math.round(v)}%`;

describe('tls-handshake', () => {
  let bench: Bench;

  beforeAll(async () => {
    await sampleMachineLoad();
    const options = layoverOptions();
    bench = await startBench({ images: [], layover: { ...options, flags: { ...options.flags, registries: 'registry.test,*.tls.test' } } });
  });
  afterAll(() => bench?.close());

  test('new names, seen names, resumption', async () => {
    const layover = bench.layover!;
    const pid = layover.child.pid!;
    const handshakes = async (names: (string | null)[], version: Version, resume = false): Promise<Run> => {
      const job: HandshakeJob = { address: '127.0.0.1', port: 443, caFile: layover.caFile, names, version, resume };
      const before = cpuSeconds(pid);
      const { lines } = await runNodeScript<HandshakeResult>(bench.sandbox, CLIENT, job, { timeoutMs: 120_000 });
      const cpuMicros = ((cpuSeconds(pid) - before) / names.length) * 1e6;
      const failed = lines.filter((line) => line.error !== undefined || !line.authorized);
      if (lines.length !== names.length || failed.length > 0) throw new Error(`handshakes failed: ${JSON.stringify(failed.slice(0, 5))}`);
      return { results: lines, cpuMicros };
    };

    // The JIT and OpenSSL's first-use costs, on names and parents that are not measured.
    await handshakes(Array.from({ length: WARM_UP }, (_, i) => (i % 2 ? 'docker.proxy' : `w.warm${i}.tls.test`)), 'TLSv1.3');

    const other = new OtherCpu(bench.sandbox);
    const names = Array.from({ length: NEW_NAMES }, (_, i) => `h.n${i}.tls.test`);
    const fresh = await handshakes(names, 'TLSv1.3');
    const seen = await handshakes(names, 'TLSv1.3');
    const minted = new Set(names.map((name) => `*.${name.slice(2)}`));
    const mintMs = layover
      .logs()
      .filter((line) => line.msg === 'minted TLS certificate' && minted.has(String(line.certificate)))
      .map((line) => Number(line.ms));
    expect(mintMs).toHaveLength(NEW_NAMES);

    const timing = (label: string, run: Run): string[] => {
      const times = run.results.map((r) => r.ms);
      return [label, 'TLS 1.3', `${times.length}`, fixed(median(times)), fixed(percentile(times, 90)), fixed(run.cpuMicros, 0)];
    };
    const newNameMedian = median(fresh.results.map((r) => r.ms));
    printTable(
      `tls-handshake: ${NEW_NAMES} names under a wildcard, each with its own certificate, one handshake at a time (Node tls.connect)`,
      ['case', 'TLS', 'handshakes', 'median ms', 'p90 ms', 'server CPU µs/handshake'],
      [
        timing('new name (minted in the handshake)', fresh),
        ['  of which minting (Layover log)', '', `${mintMs.length}`, fixed(median(mintMs)), fixed(percentile(mintMs, 90)), ''],
        timing('seen name (context cached)', seen),
      ],
      [
        'Handshake: from tls.connect to secureConnect on the client (TCP connect included), certificate verified against the CA.',
        ...targetLines([atMost('a handshake for a new SNI name, median', newNameMedian, NEW_NAME_GOAL_MS, ms)]),
      ],
    );

    const rows: string[][] = [];
    const resumedShare: Record<Version, { resumed: number; total: number }> = { 'TLSv1.3': { resumed: 0, total: 0 }, 'TLSv1.2': { resumed: 0, total: 0 } };
    const certificates: [string, string | null][] = [
      ['registry.test (its own)', 'registry.test'],
      ['*.n0.tls.test (wildcard)', 'h.n0.tls.test'],
      ['docker.proxy (default, by SNI)', 'docker.proxy'],
      ['docker.proxy (default, no SNI)', null],
    ];
    for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
      for (const [label, name] of certificates) {
        const full = await handshakes(Array.from({ length: RESUMED }, () => name), version);
        const resumedRun = await handshakes(Array.from({ length: RESUMED + 1 }, () => name), version, true);
        // The first handshake of a resumed run is the full one that got the session.
        const resumed = resumedRun.results.slice(1);
        const reused = resumed.filter((r) => r.reused);
        resumedShare[version].resumed += reused.length;
        resumedShare[version].total += resumed.length;
        rows.push([
          label,
          version.replace('TLSv', 'TLS '),
          `${reused.length}/${resumed.length}`,
          fixed(median(full.results.map((r) => r.ms))),
          reused.length > 0 ? fixed(median(reused.map((r) => r.ms))) : '-',
          fixed(full.cpuMicros, 0),
          fixed(resumedRun.cpuMicros, 0),
        ]);
      }
    }
    const share = (version: Version): number => (100 * resumedShare[version].resumed) / resumedShare[version].total;
    const targets: Target[] = (['TLSv1.3', 'TLSv1.2'] as const).map((version) => atLeast(`session resumption, ${version.replace('TLSv', 'TLS ')}, share of handshakes resumed`, share(version), 100, percent));
    printTable(
      `tls-handshake: session resumption, ${RESUMED} reconnects offering the first connection's session`,
      ['certificate', 'TLS', 'resumed', 'full median ms', 'resumed median ms', 'server CPU µs/full', 'server CPU µs/resumed run'],
      rows,
      [
        'server CPU µs/resumed run: per handshake of the run, its one full handshake included.',
        'Resumption is by session ticket, as Go (docker, containerd), curl and Node clients offer it; a TLS 1.2 client that offers only a session ID (openssl s_client -no_ticket) gets a full handshake: Node keeps no server-side session cache.',
        ...targetLines(targets),
        interference(other.read()),
      ],
    );
  });
});
