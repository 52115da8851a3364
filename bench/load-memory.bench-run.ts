/**
 * load-memory: does Layover's memory stay flat under a long, mixed load (issue 13: RSS flat within ±10%
 * over the second half of a 10-minute run with 100 clients)? CONCURRENCY clients pull images through
 * Layover for LAYOVER_BENCH_LOAD_SECONDS (default 600; e.g. 60 to try the bench out) the way clients
 * pull: the manifest by tag, by digest, then every blob (lib/load-client.ts, a Node script in its own
 * process inside the sandbox). Most pulls take one of HOT_IMAGES images (layers of 64 KiB to 32 MiB:
 * cache hits once warm); one pull every MISS_EVERY_MS takes a new image instead (a miss: new blobs
 * fetched from the upstream and committed). Layover's VmRSS is sampled every second. Printed: RSS at
 * the start, at the end of the first minute, the highest, at the end, and the second half's lowest,
 * highest and mean; the load's requests, throughput and errors; Layover's CPU. Under the table the
 * target: over the second half of the load (up to when the clients stop starting pulls; the wind-down
 * while the last ones finish is left out), every sample within ±10% of its mean. Everything runs
 * in the bench's network namespace (test/bench), removed afterwards. About the load's duration plus
 * 1–2 minutes of setup (pushing the images).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Bench, startBench } from '../test/bench/bench.js';
import { type RandomImage, pushRandomImages } from '../test/bench/images.js';
import { runNodeScript } from '../test/bench/node-script.js';
import { MiB } from './lib/blobs.js';
import type { LoadImage, LoadJob, LoadReport } from './lib/load-client.js';
import { cpuSeconds, OtherCpu, rssBytes } from './lib/process-stats.js';
import { fixed, interference, megabytes, printTable, sampleMachineLoad } from './lib/report.js';
import { layoverOptions } from './lib/servers.js';
import { atMost, type Target, targetLines } from './lib/targets.js';

const SECONDS = Number(process.env.LAYOVER_BENCH_LOAD_SECONDS ?? 600);
const CONCURRENCY = 100;
const HOT_IMAGES = 8;
const MISS_EVERY_MS = 3_000;
const KiB = 1024;
/** The hot images' layers, by image number: small, medium and large, as real images mix them. */
const HOT_LAYERS: number[][] = [[64 * KiB], [MiB, 256 * KiB], [8 * MiB, MiB], [32 * MiB]];
const COLD_LAYERS = [512 * KiB, 64 * KiB];
const CLIENT_SCRIPT = fileURLToPath(new URL('./lib/load-client.ts', import.meta.url));

interface Sample {
  seconds: number;
  rss: number;
}

describe('load-memory', () => {
  let bench: Bench;
  let hot: RandomImage[];
  let cold: RandomImage[];

  beforeAll(async () => {
    if (!(SECONDS > 0)) throw new Error(`LAYOVER_BENCH_LOAD_SECONDS: expected a number of seconds, got "${process.env.LAYOVER_BENCH_LOAD_SECONDS}"`);
    await sampleMachineLoad();
    bench = await startBench({ images: [], layover: layoverOptions() });
    const push = { resolvConf: bench.resolver.resolvConf, layoutDir: join(bench.sandbox.dir, 'load-layouts') };
    hot = await pushRandomImages(bench.sandbox, bench.registry, bench.ca.trustDir, {
      ...push,
      count: HOT_IMAGES,
      repository: 'bench/load-hot',
      layerSizes: (i) => HOT_LAYERS[i % HOT_LAYERS.length]!,
    });
    cold = await pushRandomImages(bench.sandbox, bench.registry, bench.ca.trustDir, {
      ...push,
      count: Math.ceil((SECONDS * 1000) / MISS_EVERY_MS),
      repository: 'bench/load-cold',
      layerSizes: () => COLD_LAYERS,
    });
  });
  afterAll(() => bench?.close());

  test(`${CONCURRENCY} clients for ${SECONDS} s`, { timeout: (SECONDS + 300) * 1000 }, async () => {
    const layover = bench.layover!;
    const pid = layover.child.pid!;
    const describeImage = (image: RandomImage): LoadImage => ({
      repository: image.repository,
      tag: image.tag,
      digest: image.manifest.digest,
      mediaType: image.manifest.mediaType,
      manifestSize: image.manifest.size,
      blobs: image.blobs.map((b) => ({ digest: b.digest, size: b.size })),
    });
    const job: LoadJob = {
      host: 'registry.test',
      address: '127.0.0.1',
      caFile: layover.caFile,
      seconds: SECONDS,
      concurrency: CONCURRENCY,
      missEveryMs: MISS_EVERY_MS,
      hot: hot.map(describeImage),
      cold: cold.map(describeImage),
    };

    const other = new OtherCpu(bench.sandbox);
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    const samples: Sample[] = [{ seconds: 0, rss: rssBytes(pid) }];
    const timer = setInterval(() => samples.push({ seconds: (performance.now() - started) / 1000, rss: rssBytes(pid) }), 1000);
    let report: LoadReport;
    try {
      const { lines } = await runNodeScript<LoadReport>(bench.sandbox, CLIENT_SCRIPT, job, { timeoutMs: (SECONDS + 120) * 1000 });
      report = lines.at(-1)!;
    } finally {
      clearInterval(timer);
    }
    const wall = (performance.now() - started) / 1000;
    samples.push({ seconds: wall, rss: rssBytes(pid) });
    const cpu = cpuSeconds(pid) - cpuBefore;

    const at = (seconds: number): Sample => samples.findLast((s) => s.seconds <= seconds) ?? samples[0]!;
    // The load ends at SECONDS (the clients start no pull after it; the script started a little after
    // `started`, so every sample before it is under the full load). The wind-down after it, while the
    // last pulls finish, is not the 100 clients' load: it is left out of the second half.
    const loadEnd = Math.min(SECONDS, wall);
    const secondHalf = samples.filter((s) => s.seconds >= loadEnd / 2 && s.seconds <= loadEnd).map((s) => s.rss);
    const mean = secondHalf.reduce((sum, v) => sum + v, 0) / secondHalf.length;
    const low = Math.min(...secondHalf);
    const high = Math.max(...secondHalf);
    const deviation = (100 * Math.max(high - mean, mean - low)) / mean;
    const firstMinute = Math.min(60, wall);
    const mb = (bytes: number): string => megabytes(bytes);
    const rows = [
      ['at the start', mb(samples[0]!.rss)],
      [`at ${Math.round(firstMinute)} s`, mb(at(firstMinute).rss)],
      ['highest', mb(Math.max(...samples.map((s) => s.rss)))],
      ['at the end', mb(samples.at(-1)!.rss)],
      [`second half (${Math.round(loadEnd / 2)}–${Math.round(loadEnd)} s): lowest`, mb(low)],
      ['second half: highest', mb(high)],
      ['second half: mean', mb(mean)],
    ];
    const targets: Target[] = [
      atMost(`Layover's RSS over the second half of ${Math.round(loadEnd)} s with ${CONCURRENCY} clients, largest deviation from its mean`, deviation, 10, (v) => `±${v.toFixed(1)}%`),
    ];
    printTable(
      `load-memory: ${CONCURRENCY} clients pulling through Layover for ${SECONDS} s (Layover's VmRSS every second)`,
      ['RSS', 'MB'],
      rows,
      [
        interference(other.read()),
        `The load ran ${Math.round(loadEnd)} s; its last pulls finished ${fixed(wall - loadEnd, 1)} s later (not in the second half).`,
        `Load: ${report.pulls} pulls (${report.misses} of new images: cache misses), ${report.requests} requests (${fixed(report.requests / wall, 0)}/s), ${megabytes(report.bytes)} MB (${fixed(report.bytes / 1e6 / wall, 0)} MB/s), ${report.errors} errors${report.firstErrors.length ? `: ${report.firstErrors.join('; ')}` : ''}.`,
        `Layover used ${fixed(cpu, 1)} CPU-s (${fixed((1e6 * cpu) / Math.max(1, report.requests), 0)} µs per request).`,
        ...targetLines(targets),
      ],
    );
    expect(report.errors).toBe(0);
  });
});
