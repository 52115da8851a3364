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
 * Each server gets a short warm-up, then SECONDS of load; printed per server: q/s and its ratio to
 * dnsmasq, lost queries, average and maximum latency (dnsperf prints no percentiles) and the server's
 * CPU µs per query from /proc (all its threads) and its RSS after the run (each UDP answer worker
 * adds its own V8 isolate). dnsperf runs on the same two cores as the server.
 * About 50 seconds. LAYOVER_BENCH_DNS_UDP_WORKERS=N runs Layover with DNS_UDP_WORKERS=N (0, a
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
import { fixed, interference, printTable, ratio, sampleMachineLoad } from './lib/report.js';
import { atLeast, targetLines, times } from './lib/targets.js';
import { layoverOptions } from './lib/servers.js';

const SECONDS = 10;
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
    const rows: string[][] = [];
    const rates: Record<string, number> = {};
    for (const [label, server, pid] of [
      ['dnsmasq', RESOLVER_ADDRESS, dnsmasqPid],
      [LAYOVER_LABEL, LAYOVER_ADDRESS, layover.child.pid!],
    ] as const) {
      await dnsperf(server, queryFile, WARM_UP_SECONDS);
      const cpuBefore = cpuSeconds(pid);
      const result = await dnsperf(server, queryFile, SECONDS);
      const cpu = cpuSeconds(pid) - cpuBefore;
      rates[label === 'dnsmasq' ? 'dnsmasq' : 'Layover'] = result.perSecond;
      rows.push([
        label,
        `${result.completed}`,
        fixed(result.perSecond, 0),
        ratio(result.perSecond, rates.dnsmasq!),
        `${result.lost}`,
        fixed(result.averageMs, 3),
        fixed(result.maxMs, 1),
        fixed((cpu / result.completed) * 1e6, 1),
        fixed(rssBytes(pid) / 1e6, 0),
        result.responseCodes,
      ]);
      expect(result.responseCodes).not.toMatch(/SERVFAIL|REFUSED|FORMERR/);
    }
    printTable(
      `dns-rate: ${title} (${queries.join(', ')}), dnsperf, ${CLIENTS} clients, ${OUTSTANDING} in flight, ${SECONDS} s`,
      ['server', 'queries', 'q/s', 'vs dnsmasq', 'lost', 'avg ms', 'max ms', 'server CPU µs/query', 'RSS MB', 'response codes'],
      rows,
      [interference(other.read()), ...(title === 'intercepted' ? targetLines([atLeast('DNS for intercepted names vs dnsmasq', rates.Layover! / rates.dnsmasq!, 1, times)]) : [])],
    );
    return rates.Layover! / rates.dnsmasq!;
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
