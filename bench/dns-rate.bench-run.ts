/**
 * dns-rate: queries per second over UDP from dnsperf (installed with the test programs), inside one
 * bench sandbox, against Layover's DNS (127.0.0.1:53) and dnsmasq (127.0.0.3:53, the sandbox's
 * resolver, answering the same names from `--host-record`: the reference, single-threaded C).
 * dnsmasq is also Layover's upstream, so the forwarded name of the mixed run is answered from
 * Layover's answer cache after the first query. Two query files:
 *
 *   intercepted  registry.test A (what every node behind Layover asks most)
 *   mixed        registry.test A, registry.test AAAA, forwarded.test A (a name Layover forwards)
 *
 * Each server gets a short warm-up, then ROUNDS rounds of SECONDS of load each, the two servers
 * taking turns and swapping which goes first every round (dnsmasq, Layover; Layover, dnsmasq; ...):
 * the rate of both climbs over a sandbox's first minute on this VM, and whichever always ran second
 * gained by it. Printed per server: its median q/s over the rounds and their range, the median of the
 * rounds' ratios to dnsmasq (each round's pair ran back to back: the target), lost queries, average
 * (median round) and maximum latency (dnsperf prints no percentiles), the server's CPU µs per query
 * from /proc (all its threads, all rounds) and its RSS after the run (each UDP answer worker adds its
 * own V8 isolate). dnsperf runs on the same two cores as the server.
 * About 2 minutes. LAYOVER_BENCH_DNS_UDP_WORKERS=N runs Layover with DNS_UDP_WORKERS=N (0, a
 * number or auto; default Layover's own default), named in the table's Layover row.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { INTERCEPTED_HOST } from '../test/bench/bench.js';
import { type LayoverProcess, startLayoverProcess } from '../test/bench/layover-process.js';
import { RESOLVER_ADDRESS, startResolver } from '../test/bench/resolver.js';
import { createSandbox, type Sandbox } from '../test/bench/sandbox.js';
import { createTestCa } from '../test/bench/test-ca.js';
import { cpuSeconds, findPid, OtherCpu, rssBytes } from './lib/process-stats.js';
import { fixed, interference, median, printTable, sampleMachineLoad } from './lib/report.js';
import { atLeast, targetLines, times } from './lib/targets.js';
import { layoverOptions } from './lib/servers.js';

const SECONDS = 5;
const ROUNDS = 5;
const WARM_UP_SECONDS = 2;
/** dnsperf's simulated clients (one socket each) and queries in flight: a resolver with many nodes behind it. */
const CLIENTS = 8;
const OUTSTANDING = 200;
const LAYOVER_ADDRESS = '127.0.0.1';
/** Both families, so that the AAAA queries of the mixed run get an answer from both servers. */
const ADVERTISED = ['127.0.0.1', '::1'];
const FORWARDED_HOST = 'forwarded.test';
const FORWARDED_ADDRESS = '127.0.0.9';
/** Layover's UDP answer workers for this run: unset leaves Layover's default. */
const UDP_WORKERS = process.env.LAYOVER_BENCH_DNS_UDP_WORKERS;
const LAYOVER_LABEL = UDP_WORKERS === undefined ? 'Layover' : `Layover, DNS_UDP_WORKERS=${UDP_WORKERS}`;

/** One server's rounds of dnsperf, and its CPU over them. */
interface ServerRuns {
  label: string;
  address: string;
  pid: number;
  runs: DnsperfResult[];
  cpu: number;
}

interface DnsperfResult {
  completed: number;
  lost: number;
  perSecond: number;
  averageMs: number;
  maxMs: number;
  responseCodes: string;
}

describe('dns-rate', () => {
  let sandbox: Sandbox;
  let layover: LayoverProcess;
  let dnsmasqPid: number;

  beforeAll(async () => {
    await sampleMachineLoad();
    sandbox = await createSandbox();
    const ca = await createTestCa(join(sandbox.dir, 'test-ca'));
    await startResolver(sandbox, { [INTERCEPTED_HOST]: ADVERTISED, [FORWARDED_HOST]: [FORWARDED_ADDRESS] });
    dnsmasqPid = findPid(sandbox, `--listen-address=${RESOLVER_ADDRESS}`);
    const options = layoverOptions();
    const flags = { ...options.flags, advertise: ADVERTISED.join(','), ...(UDP_WORKERS === undefined ? {} : { 'dns-udp-workers': UDP_WORKERS }) };
    layover = await startLayoverProcess(sandbox, { ...options, upstreamCa: ca.certFile, flags });
  });
  afterAll(() => sandbox?.destroy());

  const dnsperf = async (server: string, queryFile: string, seconds: number): Promise<DnsperfResult> => {
    const run = await sandbox.exec(
      'dnsperf',
      ['-s', server, '-d', queryFile, '-l', `${seconds}`, '-c', `${CLIENTS}`, '-q', `${OUTSTANDING}`, '-T', '1', '-t', '2'],
      { timeoutMs: (seconds + 30) * 1000 },
    );
    const number = (label: string): number => Number(new RegExp(`^\\s*${label}:\\s+([\\d.]+)`, 'm').exec(run.stdout)?.[1] ?? NaN);
    const latency = /Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)/.exec(run.stdout);
    const result = {
      completed: number('Queries completed'),
      lost: number('Queries lost'),
      perSecond: number('Queries per second'),
      averageMs: Number(latency?.[1] ?? NaN) * 1000,
      maxMs: Number(latency?.[2] ?? NaN) * 1000,
      responseCodes: /Response codes:\s+(.*)$/m.exec(run.stdout)?.[1]?.trim() ?? '',
    };
    if (run.code !== 0 || !(result.completed > 0)) throw new Error(`dnsperf against ${server} failed (${run.code}):\n${run.stdout}\n${run.stderr}`);
    return result;
  };

  const measure = async (title: string, queries: string[]): Promise<number> => {
    const queryFile = join(sandbox.dir, `queries-${title}.txt`);
    writeFileSync(queryFile, `${queries.join('\n')}\n`);
    const other = new OtherCpu(sandbox);
    const reference: ServerRuns = { label: 'dnsmasq', address: RESOLVER_ADDRESS, pid: dnsmasqPid, runs: [], cpu: 0 };
    const subject: ServerRuns = { label: LAYOVER_LABEL, address: LAYOVER_ADDRESS, pid: layover.child.pid!, runs: [], cpu: 0 };
    const servers = [reference, subject];
    for (const server of servers) await dnsperf(server.address, queryFile, WARM_UP_SECONDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
        const cpuBefore = cpuSeconds(server.pid);
        const result = await dnsperf(server.address, queryFile, SECONDS);
        server.cpu += cpuSeconds(server.pid) - cpuBefore;
        server.runs.push(result);
        expect(result.responseCodes).not.toMatch(/SERVFAIL|REFUSED|FORMERR/);
      }
    }
    /** Per round, the server's q/s over dnsmasq's in the same round. */
    const roundRatios = (server: ServerRuns): number[] => server.runs.map((run, i) => run.perSecond / reference.runs[i]!.perSecond);
    const rows = servers.map((server) => {
      const rates = server.runs.map((run) => run.perSecond);
      const completed = server.runs.reduce((sum, run) => sum + run.completed, 0);
      return [
        server.label,
        `${completed}`,
        fixed(median(rates), 0),
        `${fixed(Math.min(...rates), 0)}–${fixed(Math.max(...rates), 0)}`,
        times(median(roundRatios(server))),
        server === reference ? '' : roundRatios(server).map((r) => r.toFixed(2)).join(' '),
        `${server.runs.reduce((sum, run) => sum + run.lost, 0)}`,
        fixed(median(server.runs.map((run) => run.averageMs)), 3),
        fixed(Math.max(...server.runs.map((run) => run.maxMs)), 1),
        fixed((server.cpu / completed) * 1e6, 1),
        fixed(rssBytes(server.pid) / 1e6, 0),
        [...new Set(server.runs.map((run) => run.responseCodes.replace(/ \d+ \(/g, ' (')))].join('; '),
      ];
    });
    const ratioToDnsmasq = median(roundRatios(subject));
    printTable(
      `dns-rate: ${title} (${queries.join(', ')}), dnsperf, ${CLIENTS} clients, ${OUTSTANDING} in flight, ${ROUNDS} rounds of ${SECONDS} s`,
      ['server', 'queries', 'q/s (median)', 'q/s range', 'vs dnsmasq', 'per round', 'lost', 'avg ms', 'max ms', 'server CPU µs/query', 'RSS MB', 'response codes'],
      rows,
      [
        interference(other.read()),
        'vs dnsmasq: the median over the rounds of the server\'s q/s over dnsmasq\'s in the same round (the two ran back to back, taking turns at going first).',
        ...(title === 'intercepted' ? targetLines([atLeast('DNS for intercepted names vs dnsmasq', ratioToDnsmasq, 1, times)]) : []),
      ],
    );
    return ratioToDnsmasq;
  };

  test('an intercepted name', async () => {
    const answer = await sandbox.exec('dig', [`@${LAYOVER_ADDRESS}`, '+short', INTERCEPTED_HOST, 'A']);
    expect(answer.stdout.trim()).toBe(ADVERTISED[0]);
    expect(await measure('intercepted', [`${INTERCEPTED_HOST} A`])).toBeGreaterThan(0);
  });

  test('intercepted A and AAAA and a forwarded name from the answer cache', async () => {
    const forwarded = await sandbox.exec('dig', [`@${LAYOVER_ADDRESS}`, '+short', FORWARDED_HOST, 'A']);
    expect(forwarded.stdout.trim()).toBe(FORWARDED_ADDRESS);
    expect(await measure('mixed', [`${INTERCEPTED_HOST} A`, `${INTERCEPTED_HOST} AAAA`, `${FORWARDED_HOST} A`])).toBeGreaterThan(0);
  });
});
