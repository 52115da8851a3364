import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startBench, INTERCEPTED_HOST, type Bench } from '../../bench/bench.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../bench/images.js';
import { curl } from './curl.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { Digest } from '../../../src/registry/digest.js';
import { SMALL_BLOB_BYTES } from '../../../src/proxy/small-blob.js';

let bench: Bench;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'multi', 'large', 'nested'] });
}, 180_000);
afterAll(() => bench?.close());

const base = `https://${INTERCEPTED_HOST}/v2`;
const upstreamRequests = async (match: (r: { method: string; path: string }) => boolean) => {
  await bench.registry.sync();
  return bench.registry.requests().filter(match);
};
const restartLayover = async (options: Parameters<Bench['startLayover']>[0] = {}) => {
  await bench.layover?.stop();
  return bench.startLayover(options);
};

describe('blobs from the cache', () => {
  it('HEAD of a cached blob is answered without the upstream; HEAD of an uncached one stays a HEAD', async () => {
    await restartLayover();
    const image = bench.images.oci!;
    const [config, layer] = [image.manifests[0]!.config, image.manifests[0]!.layers[0]!];
    bench.registry.clearRequests();
    const miss = await curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`, ['-I']);
    expect(miss.status).toBe(200);
    expect(await upstreamRequests((r) => r.path.includes(layer.digest))).toEqual([expect.objectContaining({ method: 'HEAD' })]);

    await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`); // fills the cache
    bench.registry.clearRequests();
    const hit = await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`, ['-I']);
    expect(hit.status).toBe(200);
    expect(hit.headers['content-length']).toBe(String(config.size));
    expect(hit.headers['docker-content-digest']).toBe(config.digest);
    expect(await upstreamRequests((r) => r.path.includes('/blobs/'))).toEqual([]);
  });

  it('answers Range requests from the cache with 206, and 416 when unsatisfiable', async () => {
    const image = bench.images.large!;
    const layer = image.manifests[0]!.layers[0]!;
    const full = await curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`);
    expect(full.status).toBe(200);
    expect(full.body.length).toBe(layer.size);
    bench.registry.clearRequests();
    const part = await curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`, ['-r', '1000-1999']);
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 1000-1999/${layer.size}`);
    expect(part.body).toEqual(full.body.subarray(1000, 2000));
    const tail = await curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`, ['-r', '-5']);
    expect(tail.body).toEqual(full.body.subarray(layer.size - 5));
    const beyond = await curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`, ['-r', `${layer.size}-`]);
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${layer.size}`);
    expect(JSON.parse(beyond.body.toString())).toMatchObject({ errors: [{ code: 'RANGE_INVALID' }] });
    expect(await upstreamRequests((r) => r.path.includes('/blobs/'))).toEqual([]);
  });
});

describe('small blobs from memory', () => {
  const blobFile = (digest: string): string => new CacheLayout(join(bench.layover!.dataDir, 'cache')).blobPath(digest as Digest);
  // A fill commits its file just after its client got the last byte.
  const committed = (digest: string): Promise<void> => vi.waitFor(() => expect(existsSync(blobFile(digest))).toBe(true));

  it('a small blob read once is answered from memory: its file changed on disk afterwards changes no answer', async () => {
    await restartLayover();
    const image = bench.images.oci!;
    const config = image.manifests[0]!.config;
    expect(config.size).toBeLessThanOrEqual(SMALL_BLOB_BYTES);
    const filled = await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`);
    expect(filled.status).toBe(200);
    await committed(config.digest);
    const first = await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`);
    expect(first.body.equals(filled.body)).toBe(true);
    // What a disk fault would do: the file no longer holds the verified bytes. The memory still does.
    writeFileSync(blobFile(config.digest), Buffer.alloc(config.size, 0x41));
    bench.registry.clearRequests();
    const second = await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`);
    expect(second.status).toBe(200);
    expect(second.headers['content-length']).toBe(String(config.size));
    expect(second.headers['docker-content-digest']).toBe(config.digest);
    expect(second.body.equals(filled.body)).toBe(true);
    expect(await upstreamRequests((r) => r.path.includes('/blobs/'))).toEqual([]);
  });

  it('a small blob whose file is lost before its first hit is fetched again, and a bigger one is still streamed from its file', async () => {
    await restartLayover();
    const image = bench.images.oci!;
    const config = image.manifests[0]!.config;
    expect((await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`)).status).toBe(200);
    await committed(config.digest);
    rmSync(blobFile(config.digest));
    bench.registry.clearRequests();
    const again = await curl(bench, `${base}/${image.repository}/blobs/${config.digest}`);
    expect(again.status).toBe(200);
    expect(again.body.length).toBe(config.size);
    expect(await upstreamRequests((r) => r.method === 'GET' && r.path.includes(config.digest))).toHaveLength(1);

    const large = bench.images.large!.manifests[0]!.layers[0]!;
    expect(large.size).toBeGreaterThan(SMALL_BLOB_BYTES);
    const path = `${base}/${bench.images.large!.repository}/blobs/${large.digest}`;
    const filled = await curl(bench, path);
    await committed(large.digest);
    expect((await curl(bench, path)).body.equals(filled.body)).toBe(true);
    // Read from its file on every hit, never held in memory: with the file lost, the next GET is a miss.
    rmSync(blobFile(large.digest));
    bench.registry.clearRequests();
    const refetched = await curl(bench, path);
    expect(refetched.body.equals(filled.body)).toBe(true);
    expect(await upstreamRequests((r) => r.method === 'GET' && r.path.includes(large.digest))).toHaveLength(1);
  });
});

describe('one upstream download per digest', () => {
  it('ten clients asking at once for an uncached blob share one upstream GET and get identical bytes', async () => {
    await restartLayover();
    const image = bench.images.large!;
    const layer = image.manifests[0]!.layers[0]!;
    bench.registry.clearRequests();
    const results = await Promise.all(Array.from({ length: 10 }, () => curl(bench, `${base}/${image.repository}/blobs/${layer.digest}`)));
    for (const result of results) {
      expect(result.status).toBe(200);
      expect(result.body.length).toBe(layer.size);
      expect(result.body.equals(results[0]!.body)).toBe(true);
    }
    expect(await upstreamRequests((r) => r.path.includes(layer.digest))).toHaveLength(1);
  }, 60_000);
});

describe('manifests', () => {
  it('by tag with ENABLE_MANIFEST_CACHE: a second pull asks the upstream for no manifest', async () => {
    await restartLayover({ env: { ENABLE_MANIFEST_CACHE: 'true' } });
    const image = bench.images.oci!;
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'tag-1'));
    bench.registry.clearRequests();
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'tag-2'));
    expect(await upstreamRequests((r) => r.path.includes('/manifests/') || r.path.includes('/blobs/'))).toEqual([]);
  }, 60_000);

  it('keys tags by the Accept header: a single-manifest client never gets an index another client got', async () => {
    const image = bench.images.multi!;
    const url = `${base}/${image.repository}/manifests/${image.tag}`;
    bench.registry.clearRequests();
    const index = await curl(bench, url, ['-H', `Accept: ${OCI_INDEX}, ${OCI_MANIFEST}`]);
    expect(index.headers['content-type']).toBe(OCI_INDEX);
    expect(index.body.toString()).toBe(image.raw);
    const single = await curl(bench, url, ['-H', `Accept: ${OCI_MANIFEST}`]);
    expect(single.headers['content-type']).not.toBe(OCI_INDEX);
    const again = await curl(bench, url, ['-H', `Accept: ${OCI_MANIFEST}, ${OCI_INDEX}`]);
    expect(again.body.toString()).toBe(image.raw);
    // The first and the third share a key (same set of types); the second does not.
    expect(await upstreamRequests((r) => r.method === 'GET' && r.path.includes('/manifests/'))).toHaveLength(2);
  });

  it('serves manifests byte-identical with their type and digest', async () => {
    const image = bench.images.oci!;
    const byDigest = await curl(bench, `${base}/${image.repository}/manifests/${image.digest}`, ['-H', `Accept: ${OCI_MANIFEST}`]);
    expect(byDigest.status).toBe(200);
    expect(byDigest.body.toString()).toBe(image.raw);
    expect(byDigest.headers['content-type']).toBe(image.mediaType);
    expect(byDigest.headers['docker-content-digest']).toBe(image.digest);
  });

  it('keeps pulls working while the upstream is down: by digest, and by tag (stale)', async () => {
    await restartLayover(); // manifest cache off: tags are still served stale when the upstream fails
    const image = bench.images.nested!;
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'before-outage'));
    await bench.registry.stop();
    try {
      await bench.pullViaLayover(`${INTERCEPTED_HOST}/${image.repository}@${image.digest}`, join(bench.sandbox.dir, 'outage-digest'));
      await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'outage-tag'));
      expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.cache === 'stale' && l.ref === image.tag)).toBe(true);
      const unknown = await curl(bench, `${base}/never/pulled/manifests/latest`);
      expect(unknown.status).toBe(503);
      expect(JSON.parse(unknown.body.toString()).errors[0].code).toBe('UNAVAILABLE');
    } finally {
      await bench.registry.start();
    }
  }, 60_000);
});

describe('refusals and limits', () => {
  it('refuses pushes with UNSUPPORTED unless ALLOW_PUSH, and bad digests with DIGEST_INVALID', async () => {
    const push = await curl(bench, `${base}/some/repo/blobs/uploads/`, ['-X', 'POST']);
    expect(push.status).toBe(405);
    expect(JSON.parse(push.body.toString()).errors[0].code).toBe('UNSUPPORTED');
    const bad = await curl(bench, `${base}/some/repo/blobs/sha256:1234`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.toString()).errors[0].code).toBe('DIGEST_INVALID');
  });

  it('streams pushes through with ALLOW_PUSH=true', async () => {
    await restartLayover({ env: { ALLOW_PUSH: 'true' } });
    const image = bench.images.oci!;
    const pulled = join(bench.sandbox.dir, 'push-src');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), pulled);
    const pushed = await bench.sandbox.exec('skopeo', [
      '--insecure-policy', 'copy', '--dest-cert-dir', bench.layover!.certDir, '--dest-creds', bench.registry.credentials ?? 'x:y',
      `dir:${pulled}`, `docker://${INTERCEPTED_HOST}/pushed/through:v1`,
    ]);
    expect(pushed.code, pushed.stderr).toBe(0);
    const check = await bench.pullDirect('registry-direct.test/pushed/through:v1', join(bench.sandbox.dir, 'push-check'));
    expect(check.code).toBe(0);
  }, 60_000);

  it('keeps the cache under a small CACHE_MAX_SIZE, least recently used first, and pulls still succeed', async () => {
    const layover = await restartLayover({ env: { CACHE_MAX_SIZE: '1m' } });
    for (const key of ['large', 'oci', 'nested', 'multi'] as const) {
      const image = bench.images[key]!;
      await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, `evict-${key}`));
    }
    const blobsDir = join(layover.dataDir, 'cache', 'blobs');
    const files = readdirSync(blobsDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    const total = files.reduce((sum, e) => sum + statSync(join(e.parentPath, e.name)).size, 0);
    expect(total).toBeLessThanOrEqual(1024 * 1024);
    // The large layer (30 MiB) was used first and had to go; the last image pulled is still there.
    const names = files.map((e) => e.name);
    expect(names).not.toContain(bench.images.large!.manifests[0]!.layers[0]!.digest.slice(7));
    expect(names).toContain(bench.images.multi!.manifests[0]!.config.digest.slice(7));
    expect(readFileSync(join(bench.sandbox.dir, 'evict-multi', 'manifest.json')).length).toBeGreaterThan(0);
  }, 90_000);
});
