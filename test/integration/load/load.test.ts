/**
 * Issue 5, reliability under load, end to end: at least 100 keep-alive clients inside the netns bench
 * (./load-client.ts) pull blobs and manifests through `layover serve` for LOAD_SECONDS (default 15,
 * e.g. LOAD_SECONDS=60 for the long run; LOAD_CLIENTS raises the client count), with the real
 * distribution registry as the upstream. The mix: cached blobs (whole, Range, HEAD), cached manifests,
 * a 30 MiB layer (whole and Range), and misses from fresh random images pushed at setup and released
 * over the whole run (whole, Range, manifests by tag and digest), several clients at once per new digest.
 *
 * Checks: every body hashed or compared (zero wrong bytes), zero 5xx and zero failed requests, one
 * upstream download per missed digest, flat memory (Layover's RSS from /proc over the run: the second
 * half against the first, and the end against the end of the warm-up), and no descriptor growth (after
 * the run and a pause, the same descriptors as after the warm-up, apart from the bounded upstream pool).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, REGISTRY_ADDRESS, startBench } from '../../bench/bench.js';
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, type RandomImage, pushRandomImages } from '../../bench/images.js';
import { runNodeScript } from '../../bench/node-script.js';
import { type FdSnapshot, fdSnapshot, rssBytes } from '../../bench/process-stats.js';
import type { LoadBlob, LoadJob, LoadManifest, LoadSummary } from './load-client.js';

const SECONDS = Number(process.env.LOAD_SECONDS ?? 15);
const CLIENTS = Math.max(100, Number(process.env.LOAD_CLIENTS ?? 100));
/** The warm-up runs the same mix, with misses of its own, so that its memory is a fair baseline. */
const WARM_UP_SECONDS = 8;
const WARM_UP_IMAGES = 8;
/** Fresh images for the run's misses: enough that new digests keep coming for the whole run. */
const RANDOM_IMAGES = Math.min(90, Math.max(12, Math.round(SECONDS * 1.2)));
/** Upstream connections undici may keep per origin (src/upstream/upstream-agent.ts). */
const UPSTREAM_POOL = 64;
const MiB = 1024 * 1024;
const CLIENT = join(import.meta.dirname, 'load-client.ts');
const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

let bench: Bench;
let warmUpImages: RandomImage[];
let runImages: RandomImage[];

/** Sizes from a fixed sequence: small and medium layers, and a 6 MiB one in every fifth image. */
function layerSizes(index: number): number[] {
  let state = (index + 1) * 2654435761;
  const next = (): number => ((state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const sizes = Array.from({ length: 8 }, () => Math.round(2048 * Math.pow(384, next())));
  if (index % 5 === 0) sizes.push(6 * MiB);
  return sizes;
}

beforeAll(async () => {
  // info, not debug: one log line per request is what a production Layover writes.
  bench = await startBench({ layover: { flags: { 'log-level': 'info' } } });
  const random = await pushRandomImages(bench.sandbox, bench.registry, bench.ca.trustDir, {
    count: WARM_UP_IMAGES + RANDOM_IMAGES,
    layerSizes,
    resolvConf: bench.resolver.resolvConf,
    parallel: 6,
  });
  warmUpImages = random.slice(0, WARM_UP_IMAGES);
  runImages = random.slice(WARM_UP_IMAGES);
  bench.registry.clearRequests();
}, 300_000);
afterAll(() => bench?.close());

function loadJob(seconds: number, uncached: RandomImage[]): LoadJob {
  const blobs = new Map<string, LoadBlob>();
  const manifests: LoadManifest[] = [];
  let large: LoadBlob | undefined;
  for (const image of Object.values(bench.images)) {
    manifests.push({ repository: image.repository, reference: image.tag, digest: image.digest, mediaType: image.mediaType });
    for (const m of image.manifests) manifests.push({ repository: image.repository, reference: m.digest, digest: m.digest, mediaType: m.mediaType });
    for (const blob of image.blobs) {
      const entry = { repository: image.repository, digest: blob.digest, size: blob.size };
      if (image.key === 'large' && blob.size > MiB) large = entry;
      else blobs.set(blob.digest, entry);
    }
  }
  return {
    caFile: bench.layover!.caFile,
    host: INTERCEPTED_HOST,
    clients: CLIENTS,
    seconds,
    accept: ACCEPT,
    cached: { blobs: [...blobs.values()], manifests, large: large! },
    uncached: uncached.map((image) => ({
      manifest: { repository: image.repository, reference: image.tag, digest: image.manifest.digest, mediaType: image.manifest.mediaType },
      blobs: image.blobs.map((b) => ({ repository: image.repository, digest: b.digest, size: b.size })),
      blobsDir: image.blobsDir,
    })),
  };
}

async function runLoad(seconds: number, uncached: RandomImage[]): Promise<LoadSummary> {
  const { lines, output } = await runNodeScript<LoadSummary>(bench.sandbox, CLIENT, loadJob(seconds, uncached), { timeoutMs: (seconds + 120) * 1000 });
  expect(lines, output).toHaveLength(1);
  return lines[0]!;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
const max = (values: number[]): number => values.reduce((a, b) => Math.max(a, b), 0);

it(`${CLIENTS} clients for ${SECONDS} s: right bytes, no 5xx, one download per miss, flat memory, no descriptor growth`, async () => {
  const layover = bench.layover!;
  const pid = layover.child.pid!;
  expect(layover.child.exitCode).toBeNull();
  const fds = (): FdSnapshot => fdSnapshot(pid, { upstream: `${REGISTRY_ADDRESS}:443`, localPorts: [443], dataDir: layover.dataDir });

  // Warm-up: the cached set is fetched (the first fills), then the whole mix with misses of its own.
  const warm = await runLoad(WARM_UP_SECONDS, warmUpImages);
  // What Layover said, for a failure message: its exit, its last warnings and errors, its stderr.
  const diagnosis = (): string =>
    `layover exit ${layover.child.exitCode ?? layover.child.signalCode ?? 'none'}; ` +
    `${JSON.stringify(layover.logs().filter((l) => l.level >= 40).slice(-5))}; ${layover.output().slice(-2000)}`;
  expect(warm.failureSamples, `warm-up failures: ${warm.failures}; ${diagnosis()}`).toEqual([]);
  await pause(1500);
  const warmRss = rssBytes(pid);
  const warmFds = fds();
  const upstreamBefore = bench.registry.requests().length;

  const samples: Array<{ ms: number; rss: number }> = [];
  const started = performance.now();
  const sampler = setInterval(() => samples.push({ ms: performance.now() - started, rss: rssBytes(pid) }), 250);
  let load: LoadSummary;
  try {
    load = await runLoad(SECONDS, runImages);
  } finally {
    clearInterval(sampler);
  }
  // Idle: the clients are gone, fills finish, sockets close.
  await pause(3000);
  const endRss = rssBytes(pid);
  const endFds = fds();

  await bench.registry.sync();
  const upstream = bench.registry.requests().slice(upstreamBefore);
  const sizeOf = new Map(runImages.flatMap((image) => image.blobs.map((b) => [b.digest, b.size] as const)));
  const fullGets = new Map<string, number>();
  for (const r of upstream) {
    const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(r.path)?.[1];
    // Whole downloads only: a Range miss goes upstream as a Range request (206), not a second download.
    if (r.method === 'GET' && r.status === 200 && digest && sizeOf.has(digest)) fullGets.set(digest, (fullGets.get(digest) ?? 0) + 1);
  }
  const duplicated = [...fullGets].filter(([, n]) => n > 1);

  // The highest RSS in each tenth of the run, for the log: a leak shows as a staircase.
  const profile = Array.from({ length: 10 }, (_, i) => max(samples.filter((s) => Math.floor((s.ms / (SECONDS * 1000)) * 10) === i).map((s) => s.rss)));
  const firstHalf = samples.filter((s) => s.ms < (SECONDS * 1000) / 2).map((s) => s.rss);
  const secondHalf = samples.filter((s) => s.ms >= (SECONDS * 1000) / 2).map((s) => s.rss);
  const ops = Object.entries(load.ops)
    .map(([op, s]) => `${op} ${s.count} (p50 ${s.p50} ms, p99 ${s.p99} ms)`)
    .join(', ');
  console.info(
    [
      `load: ${load.clients} clients, ${load.seconds} s, ${load.requests} requests (${Math.round(load.requests / load.seconds)}/s), ${mib(load.bytes)} received, ${load.connects} connections (Connection: close answers by kind: ${JSON.stringify(load.closedBy)})`,
      `  latency p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, max ${load.latencyMs.max} ms; statuses ${JSON.stringify(load.statuses)}`,
      `  ops: ${ops}`,
      `  misses: ${load.missDigests.length} fresh digests asked, ${fullGets.size} downloaded upstream, ${duplicated.length} twice; up to ${load.sameDigestMaxInFlight} requests at once for one new digest`,
      `  wrong bytes ${load.wrongBytes}, 5xx ${load.serverErrors}, failures ${load.failures}`,
      `  RSS: after warm-up ${mib(warmRss)}, first half max ${mib(max(firstHalf))}, second half max ${mib(max(secondHalf))}, after the run ${mib(endRss)}`,
      `  RSS max per tenth of the run (MiB): ${profile.map((b) => Math.round(b / MiB)).join(' ')}`,
      `  fds: after warm-up ${JSON.stringify(warmFds)}, after the run ${JSON.stringify(endFds)}`,
      `  warm-up: ${warm.requests} requests, p50 ${warm.latencyMs.p50} ms, p99 ${warm.latencyMs.p99} ms`,
    ].join('\n'),
  );

  expect(load.clients).toBeGreaterThanOrEqual(100);
  expect(load.failureSamples, `${load.failures} failures; ${diagnosis()}`).toEqual([]);
  expect(load.wrongBytes).toBe(0);
  expect(load.serverErrors).toBe(0);
  // Every kind of request happened, misses included, and several clients shared a new digest.
  for (const op of ['blob', 'range', 'head', 'manifest', 'large-range', 'miss-blob', 'miss-range', 'miss-manifest']) expect(load.ops[op]?.count, op).toBeGreaterThan(0);
  expect(fullGets.size).toBeGreaterThan(RANDOM_IMAGES);
  expect(load.sameDigestMaxInFlight).toBeGreaterThanOrEqual(2);
  expect(duplicated, 'one upstream download per missed digest').toEqual([]);
  // Keep-alive holds: the only responses that close their connection answer HEADs, which undici's
  // client itself sends with `Connection: close` (it never reuses a connection after a HEAD).
  expect(Object.keys(load.closedBy).filter((op) => op !== 'head')).toEqual([]);

  // Flat memory: no growth from the first half of the run to the second, and the end close to the warm-up.
  // Measured with --trace-gc over 120 s: V8's heap stays at 26-32 MB after every full GC while RSS
  // climbs for about a minute (buffers in flight, malloc arenas) and levels off near 480 MiB.
  // Within a 15 s window of that climb the second half ran up to 99 MiB over the first (264 -> 363 MiB
  // under a loaded machine): the margin covers the climb; a leak per request still shows (issue 13 has
  // the 10-minute run that decides flatness).
  expect(max(secondHalf)).toBeLessThan(max(firstHalf) * 1.25 + 64 * MiB);
  expect(endRss).toBeLessThan(warmRss * 1.5 + 128 * MiB);
  // No descriptor growth: no client socket left, no cache file left open, nothing else new; the
  // upstream keep-alive pool (30 s idle timeout) may hold up to its bound.
  expect(endFds.clients).toBe(0);
  expect(endFds.dataFiles).toBeLessThanOrEqual(warmFds.dataFiles);
  expect(endFds.other).toBeLessThanOrEqual(warmFds.other + 4);
  expect(endFds.upstream).toBeLessThanOrEqual(UPSTREAM_POOL);
  expect(layover.child.exitCode).toBeNull();
  const errors = layover.logs().filter((l) => l.level >= 50);
  expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
}, (SECONDS + WARM_UP_SECONDS + 180) * 1000);
