import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { LAYOVER_CLI } from '../../bench/layover-process.js';
import type { ExecResult } from '../../bench/sandbox.js';

// `layover serve` in a loopback-only sandbox in front of the real distribution registry; skopeo pulls
// through it, and `layover cache ...` runs beside it in the same sandbox, as an operator on the host
// would: it finds the admin API on the HTTP listener and the admin token in the data dir.
let bench: Bench;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'docker', 'nested'] });
}, 180_000);
afterAll(() => bench?.close());

const image = (key: 'oci' | 'docker' | 'nested'): PushedImage => bench.images[key]!;
/** The manifest(s), config and layers of an image. */
const digestsOf = (pushed: PushedImage): string[] => [pushed.digest, ...pushed.manifests.map((m) => m.digest), ...pushed.blobs.map((b) => b.digest)];
const blobFile = (digest: string): string => join(bench.layover!.dataDir, 'cache', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

async function cli(args: string[]): Promise<ExecResult> {
  return bench.sandbox.exec(process.execPath, [LAYOVER_CLI, 'cache', ...args, '--data-dir', bench.layover!.dataDir, '--http', '127.0.0.1:80', '--https', '127.0.0.1:443', '--dns', '127.0.0.1:53', '--advertise', '127.0.0.1'], { timeoutMs: 60_000 });
}

async function cacheYaml<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const result = await cli(args);
  expect(result.code, `layover cache ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return parse(result.stdout) as T;
}

async function cachedDigests(): Promise<string[]> {
  const result = await cli(['ls']);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim().split('\n').filter(Boolean).map((line) => line.split('\t')[0]!);
}

async function pull(key: 'oci' | 'docker' | 'nested', as: string): Promise<void> {
  await bench.pullViaLayover(image(key).ref(INTERCEPTED_HOST), join(bench.sandbox.dir, as));
}

async function upstreamBlobGets(): Promise<string[]> {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.path.split('/blobs/')[1]!);
}

/** Waits (generously) until `check` holds: eviction after a commit runs on its own. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('layover cache on a running Layover', () => {
  it('purge IMAGE frees its bytes and files, and the next pull fetches them from the upstream again', async () => {
    await pull('oci', 'oci-1');
    const before = await cacheYaml<{ entries: number; bytes: number }>(['stats']);
    for (const digest of image('oci').blobs.map((b) => b.digest)) expect(existsSync(blobFile(digest))).toBe(true);

    const purged = await cacheYaml<{ scope: string; removed: number; freedBytes: number; removedDigests: string[]; kept: unknown[] }>(['purge', `${INTERCEPTED_HOST}/${image('oci').repository}:${image('oci').tag}`]);
    expect(purged.scope).toBe(`${INTERCEPTED_HOST}/bench/oci:v1`);
    expect(new Set(purged.removedDigests)).toEqual(new Set(digestsOf(image('oci'))));
    expect(purged.kept).toEqual([]);
    const after = await cacheYaml<{ entries: number; bytes: number }>(['stats']);
    expect(after.bytes).toBe(before.bytes - purged.freedBytes);
    expect(after.entries).toBe(before.entries - purged.removed);
    for (const digest of digestsOf(image('oci'))) expect(existsSync(blobFile(digest))).toBe(false);
    // Through the API, not the files: the running Layover holds the data dir's lock.
    expect(bench.layover!.logs().some((line) => line.msg === 'admin: purge' && line.removed === purged.removed)).toBe(true);

    bench.registry.clearRequests();
    await pull('oci', 'oci-2');
    expect((await upstreamBlobGets()).sort()).toEqual(image('oci').blobs.map((b) => b.digest).sort());
  }, 180_000);

  it('rejects malformed digests and references with a clear error, before calling anything', async () => {
    const cases: Array<[string, RegExp]> = [
      ['sha256:abc', /expected a digest such as sha256:/],
      ['alpine:3.20', /the registry first/],
      [`${INTERCEPTED_HOST}/Bench/OCI:v1`, /repository: expected a repository name/],
      [`${INTERCEPTED_HOST}/bench/oci:-v1`, /tag: expected a tag/],
    ];
    for (const [arg, message] of cases) {
      const result = await cli(['purge', arg]);
      expect(result.code, arg).toBe(2);
      expect(result.stderr, arg).toMatch(message);
    }
    expect((await cli(['purge'])).code).toBe(2);
  }, 60_000);

  it('a pinned image survives prune --max-size 0 and eviction under a small CACHE_MAX_SIZE while an unpinned one goes; the pin survives a restart', async () => {
    // Pinned before it is cached: the pin applies once it is.
    const pinned = await cacheYaml<{ scope: string; added: boolean; cachedBlobs: number }>(['pin', `${INTERCEPTED_HOST}/bench/docker:v1`]);
    expect(pinned).toMatchObject({ scope: `${INTERCEPTED_HOST}/bench/docker:v1`, added: true, cachedBlobs: 0 });
    await pull('docker', 'docker-1');
    await pull('nested', 'nested-1');
    const docker = digestsOf(image('docker'));
    const nestedOwn = digestsOf(image('nested')).filter((digest) => !docker.includes(digest));

    const pruned = await cacheYaml<{ removed: number }>(['prune', '--max-size', '0']);
    expect(pruned.removed).toBeGreaterThan(0);
    let cached = await cachedDigests();
    expect(cached.sort()).toEqual([...new Set(docker)].sort());
    for (const digest of nestedOwn) expect(existsSync(blobFile(digest))).toBe(false);

    // A restart with a cap far below the pinned image: the pin, a record in the index, is still there.
    await bench.layover!.stop();
    const dataDir = bench.layover!.dataDir;
    await bench.startLayover({ dataDir, flags: { 'cache-max-size': '1k' } });
    const stats = await cacheYaml<{ pins: number; pinnedBytes: number; bytes: number }>(['stats']);
    expect(stats.pins).toBe(1);
    expect(stats.pinnedBytes).toBe(stats.bytes);
    await pull('nested', 'nested-2');
    await eventually(async () => {
      cached = await cachedDigests();
      return nestedOwn.every((digest) => !cached.includes(digest));
    }, 'the unpinned image evicted under CACHE_MAX_SIZE=1k');
    expect(cached.sort()).toEqual([...new Set(docker)].sort());

    // Unpinned, it goes too; on the files, with Layover stopped, the same commands work.
    await bench.layover!.stop();
    expect((await cacheYaml<{ wasPinned: boolean }>(['unpin', `${INTERCEPTED_HOST}/bench/docker:v1`])).wasPinned).toBe(true);
    const purgedOnFiles = await cacheYaml<{ removed: number }>(['purge', INTERCEPTED_HOST]);
    expect(purgedOnFiles.removed).toBe(new Set(docker).size);
    expect(await cachedDigests()).toEqual([]);
  }, 240_000);
});
