/**
 * Issue 12, prefetch: `layover prefetch` (the real CLI, a child process inside the sandbox) against
 * a running `layover serve`, the real distribution registry as upstream with a multi-platform image
 * (an OCI index pushed with skopeo --all), skopeo pulling through Layover afterwards. What the
 * upstream logged proves what was fetched: after a prefetch, pulls make no blob GET at all.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { prefetchCommandLine, pullPlatform, pushReferrer, runPrefetch, upstreamBlobGets } from './prefetch-bench.js';

let bench: Bench;
let multi: PushedImage;
let oci: PushedImage;
beforeAll(async () => {
  bench = await startBench({ images: ['multi', 'oci'], seed: 'prefetch' });
  multi = bench.images.multi!;
  oci = bench.images.oci!;
}, 180_000);
afterAll(() => bench?.close());

const blobsOf = (image: PushedImage, architecture: string): string[] => {
  const manifest = image.manifests.find((m) => m.platform?.architecture === architecture)!;
  return [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
};

/** A fresh Layover (empty cache) on the same upstream, whose requests are forgotten. */
async function freshLayover(options: Parameters<Bench['startLayover']>[0] = {}): Promise<void> {
  await bench.layover?.stop();
  await bench.startLayover(options);
  await bench.registry.sync();
  bench.registry.clearRequests();
}

describe('layover prefetch', () => {
  it('of a multi-platform image: pulling each platform afterwards makes 0 upstream blob GETs', async () => {
    await freshLayover();
    const result = await runPrefetch(bench, [multi.ref(INTERCEPTED_HOST)]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    // Not a terminal: one line per finished blob, then the image, then the summary.
    for (const blob of multi.blobs) expect(result.stdout).toContain(`blob ${blob.digest}`);
    expect(result.stdout).toContain(`done   ${multi.ref(INTERCEPTED_HOST)}: 3 manifests, ${multi.blobs.length} blobs`);
    expect(result.stdout).toMatch(/prefetched 1 of 1 images/);
    // Each blob was fetched once, by the prefetch.
    expect((await upstreamBlobGets(bench)).sort()).toEqual(multi.blobs.map((b) => b.digest).sort());

    bench.registry.clearRequests();
    for (const architecture of ['amd64', 'arm64']) {
      await pullPlatform(bench, multi.ref(INTERCEPTED_HOST), architecture, join(bench.sandbox.dir, `after-prefetch-${architecture}`));
    }
    await bench.pullViaLayover(multi.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'after-prefetch-all'), { all: true });
    expect(await upstreamBlobGets(bench)).toEqual([]);
    // The pulls really read these blobs: from the cache.
    const hits = bench.layover!.logs().filter((l) => l.msg === 'request' && l.cache === 'hit' && typeof l.digest === 'string');
    expect(new Set(hits.map((l) => l.digest))).toEqual(new Set(multi.blobs.map((b) => b.digest)));
  }, 180_000);

  it('--platform fetches only that platform', async () => {
    await freshLayover();
    const result = await runPrefetch(bench, ['--platform', 'linux/arm64', multi.ref(INTERCEPTED_HOST)]);
    expect(result.code, result.stderr).toBe(0);
    const fetched = await upstreamBlobGets(bench);
    expect(fetched.sort()).toEqual(blobsOf(multi, 'arm64').sort());
    const amd64Only = blobsOf(multi, 'amd64').filter((digest) => !blobsOf(multi, 'arm64').includes(digest));
    expect(amd64Only.length).toBeGreaterThan(0);
    for (const digest of amd64Only) expect(fetched).not.toContain(digest);

    // The other platform was not fetched, so pulling it goes upstream for exactly its own blobs.
    bench.registry.clearRequests();
    await pullPlatform(bench, multi.ref(INTERCEPTED_HOST), 'arm64', join(bench.sandbox.dir, 'platform-arm64'));
    expect(await upstreamBlobGets(bench)).toEqual([]);
    await pullPlatform(bench, multi.ref(INTERCEPTED_HOST), 'amd64', join(bench.sandbox.dir, 'platform-amd64'));
    expect((await upstreamBlobGets(bench)).sort()).toEqual(amd64Only.sort());
  }, 180_000);

  it('--platform naming none of the index fails that image with the platforms it has', async () => {
    const result = await runPrefetch(bench, ['--platform', 'linux/s390x', multi.ref(INTERCEPTED_HOST)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`failed ${multi.ref(INTERCEPTED_HOST)}: the index has no manifest for linux/s390x (it has linux/amd64, linux/arm64)`);
  }, 60_000);

  it('a bad reference and an unknown image fail with a clear message; the other images still complete', async () => {
    await freshLayover();
    const unknown = `${INTERCEPTED_HOST}/bench/never-pushed:v1`;
    const elsewhere = 'quay.io/some/image:1';
    const result = await runPrefetch(bench, ['Bad//Reference', unknown, oci.ref(INTERCEPTED_HOST), elsewhere]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('failed Bad//Reference: "Bad//Reference" is not an image reference');
    expect(result.stderr).toMatch(new RegExp(`failed ${unknown}: manifest v1: 404 (NAME_UNKNOWN|MANIFEST_UNKNOWN)`));
    expect(result.stderr).toContain(`failed ${elsewhere}: quay.io is not a registry Layover proxies`);
    expect(result.stdout).toContain(`done   ${oci.ref(INTERCEPTED_HOST)}`);
    expect(result.stdout).toMatch(/prefetched 1 of 4 images/);

    bench.registry.clearRequests();
    await bench.pullViaLayover(oci.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'after-failures'));
    expect(await upstreamBlobGets(bench)).toEqual([]);
  }, 180_000);

  it('on a terminal: one progress line redrawn in place, then the finished image and the summary', async () => {
    await freshLayover();
    const cli = prefetchCommandLine(bench, [multi.ref(INTERCEPTED_HOST)]).map((arg) => `'${arg}'`).join(' ');
    // script(1) gives the CLI a real pseudo-terminal.
    const result = await bench.sandbox.exec('script', ['-qec', cli, '/dev/null'], { timeoutMs: 120_000 });
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/\r\[0\/1 images\] \d+\/\d+ blobs/);
    expect(result.stdout).toContain(`\r\x1b[Kdone   ${multi.ref(INTERCEPTED_HOST)}: 3 manifests, ${multi.blobs.length} blobs`);
    expect(result.stdout).toMatch(/prefetched 1 of 1 images/);
    // Not a line per blob, as for a pipe.
    expect(result.stdout).not.toContain('blob sha256:');
  }, 180_000);

  it('no Layover running: a clear error naming what to do', async () => {
    const result = await runPrefetch(bench, [oci.ref(INTERCEPTED_HOST)], { http: '127.0.0.1:81' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('no Layover is running at http://127.0.0.1:81: start it (layover serve)');
  }, 60_000);

  it('--referrers also fetches what the referrers tag schema lists (the registry has no referrers API)', async () => {
    const subject = oci.manifests[0]!;
    const referrer = await pushReferrer(bench, oci.repository, subject, 'prefetch test');
    await freshLayover();
    const without = await runPrefetch(bench, [oci.ref(INTERCEPTED_HOST)]);
    expect(without.code, without.stderr).toBe(0);
    expect(await upstreamBlobGets(bench)).not.toContain(referrer.layer.digest);

    const result = await runPrefetch(bench, ['--referrers', oci.ref(INTERCEPTED_HOST)]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`blob ${referrer.layer.digest}`);
    const gets = await upstreamBlobGets(bench);
    expect(gets.filter((digest) => digest === referrer.layer.digest)).toHaveLength(1);
    // The image's own blobs were cached already: not fetched again.
    for (const blob of oci.blobs) expect(gets.filter((digest) => digest === blob.digest)).toHaveLength(1);

    // The artifact is served from the cache now.
    bench.registry.clearRequests();
    const curl = await bench.sandbox.exec('curl', ['-sS', '--fail', '--cacert', bench.layover!.caFile, `https://${INTERCEPTED_HOST}/v2/${oci.repository}/blobs/${referrer.layer.digest}`]);
    expect(curl.stdout).toContain(`signature of ${subject.digest}`);
    expect(await upstreamBlobGets(bench)).toEqual([]);
  }, 180_000);
});

describe('the prefetch: list', () => {
  it('warms the cache after start without any client, and logs one line per round', async () => {
    await freshLayover({ env: { PREFETCH: `${multi.ref(INTERCEPTED_HOST)} ${oci.ref(INTERCEPTED_HOST)}`, PREFETCH_INTERVAL: '1h' } });
    const round = await bench.layover!.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('prefetch round done'), 60_000);
    expect(round).toMatchObject({ round: 1, images: 2, ok: 2, failed: [] });
    // Every blob at least once (a blob both images share may be read twice: the second image's read can start before the first one's commit).
    const unique = new Map([...multi.blobs, ...oci.blobs].map((b) => [b.digest, b.size]));
    expect(round.bytes).toBeGreaterThanOrEqual([...unique.values()].reduce((sum, size) => sum + size, 0));

    bench.registry.clearRequests();
    await bench.pullViaLayover(multi.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'listed-multi'), { all: true });
    await bench.pullViaLayover(oci.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'listed-oci'));
    expect(await upstreamBlobGets(bench)).toEqual([]);
    // Stopping mid-interval leaves nothing behind: the process exits cleanly.
    await bench.layover!.stop();
    expect(bench.layover!.child.exitCode).toBe(0);
  }, 180_000);
});
