/**
 * The real Layover process with BLOB_STORE=s3://… against s3rver (test/fixtures/s3-server.mjs: a fake
 * S3 behind TLS on 127.0.0.5, as no S3 server is packaged in Debian), the real distribution registry
 * as upstream and skopeo as client, inside the bench's network namespace:
 * - a second Layover with a data directory of its own (another replica) serves a pull from the bucket
 *   with no upstream blob GET;
 * - a blob whose bytes do not match its digest (test/fixtures/faulty-registry.mjs, the only upstream
 *   that lies on demand) never becomes an object;
 * - BLOB_REDIRECT=presigned answers hits with a 307 to the bucket, whose URL serves the right bytes;
 * - a Layover whose bucket cannot be used says so in one line and exits 2;
 * - while the storage is down, hits and misses are served from the upstream, uncached.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { type FixtureProcess, startFixture } from '../../bench/fixture-process.js';
import { LAYOVER_CLI, type LayoverProcessOptions } from '../../bench/layover-process.js';
import { curl } from '../proxy/curl.js';
import { curlBlob, FAULTY_ADDRESS, FAULTY_HOST, fixtureBlob } from '../faults/faulty-bench.js';

const S3_ADDRESS = '127.0.0.5';
const BUCKET = 'layover-blobs';
const S3_FIXTURE = fileURLToPath(new URL('../../fixtures/s3-server.mjs', import.meta.url));
const FAULTY_FIXTURE = fileURLToPath(new URL('../../fixtures/faulty-registry.mjs', import.meta.url));
/** s3rver keeps an object's bytes in `<dir>/<bucket>/<key>._S3rver_object`. */
const OBJECT_SUFFIX = '._S3rver_object';

let bench: Bench;
let s3Dir: string;
let faulty: FixtureProcess;
beforeAll(async () => {
  bench = await startBench({
    images: ['oci', 'large'],
    layover: false,
    extraRecords: { [FAULTY_HOST]: [FAULTY_ADDRESS] },
    beforeRegistry: async (sandbox, ca) => {
      const tls = await ca.issue('s3', [S3_ADDRESS]);
      s3Dir = join(sandbox.dir, 's3');
      await startFixture(sandbox, S3_FIXTURE, ['--listen', `${S3_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--dir', s3Dir, '--bucket', BUCKET]);
    },
  });
  const tls = await bench.ca.issue('faulty', [FAULTY_HOST, FAULTY_ADDRESS]);
  faulty = await startFixture(bench.sandbox, FAULTY_FIXTURE, ['--listen', `${FAULTY_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--blobs', '2']);
}, 180_000);
afterAll(() => bench?.close());

/** A Layover over the bucket: the SDK's default chain finds s3rver's keys, Node trusts the test CA for it. */
function layoverOverBucket(extra: Record<string, string> = {}): LayoverProcessOptions {
  return {
    flags: { registries: `${INTERCEPTED_HOST} ${FAULTY_HOST}` },
    env: {
      BLOB_STORE: `s3://${BUCKET}/replicas?endpoint=https://${S3_ADDRESS}&region=us-east-1`,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      NODE_EXTRA_CA_CERTS: bench.ca.certFile,
      ...extra,
    },
  };
}

async function restart(options: LayoverProcessOptions): Promise<void> {
  await bench.layover?.stop();
  await bench.startLayover(options);
}

/** The keys of every object in the bucket, read from s3rver's own directory. */
function objectKeys(dir = join(s3Dir, BUCKET), prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return entry.name.startsWith('._S3rver') ? [] : objectKeys(join(dir, entry.name), `${prefix}${entry.name}/`);
    return entry.name.endsWith(OBJECT_SUFFIX) ? [`${prefix}${entry.name.slice(0, -OBJECT_SUFFIX.length)}`] : [];
  });
}

/** Blob downloads upstream (200s). A blob the cache holds without knowing where from (adopted from the bucket) is first shown by the registry: a 206 of 4 KiB at most (src/access/). */
const upstreamBlobGets = async (): Promise<number> => {
  await bench.registry.sync();
  const gets = bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
  const shown = gets.filter((r) => r.status === 206);
  if (shown.some((r) => r.bytes > 4096)) throw new Error(`a sample larger than 4 KiB: ${JSON.stringify(shown)}`);
  return gets.length - shown.length;
};

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('blobs in an S3 bucket', () => {
  it('a second replica (its own data directory) serves a pull from the bucket with no upstream blob GET', async () => {
    const image = bench.images.oci!;
    await restart(layoverOverBucket());
    const firstDataDir = bench.layover!.dataDir;
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'pull-1'));
    for (const { digest } of image.blobs) await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === digest, 20_000);
    // Every blob, and the manifests the cache keeps by digest.
    expect(objectKeys()).toEqual(expect.arrayContaining(image.blobs.map((b) => `replicas/blobs/sha256/${b.digest.slice(7)}`)));

    await bench.layover!.stop();
    // Nothing local survives: the blobs can only come from the bucket.
    rmSync(firstDataDir, { recursive: true, force: true });
    bench.registry.clearRequests();
    await restart(layoverOverBucket());
    const second = join(bench.sandbox.dir, 'pull-2');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), second);
    expect(await upstreamBlobGets()).toBe(0);
    const files = readdirSync(second).filter((f) => /^[0-9a-f]{64}$/.test(f));
    expect(files.sort()).toEqual(image.blobs.map((b) => b.digest.slice(7)).sort());
    for (const file of files) expect(sha256(readFileSync(join(second, file)))).toBe(`sha256:${file}`);
  }, 120_000);

  it('a blob whose bytes do not match its digest never becomes an object', async () => {
    await restart(layoverOverBucket());
    const { digest } = fixtureBlob(0);
    const answer = await curlBlob(bench, 'wrong-last-byte', digest);
    expect(answer.body.length).toBeLessThan(fixtureBlob(0).bytes.length);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill dropped' && l.digest === digest && l.reason === 'digest-mismatch', 20_000);
    expect(objectKeys().filter((key) => key.endsWith(digest.slice(7)))).toEqual([]);

    // The right bytes for the same digest do become one.
    const good = await curlBlob(bench, 'ok', digest);
    expect(sha256(good.body)).toBe(digest);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === digest, 20_000);
    expect(objectKeys()).toContain(`replicas/blobs/sha256/${digest.slice(7)}`);
    expect(faulty.requests().length).toBeGreaterThan(0);
  }, 60_000);

  it('BLOB_REDIRECT=presigned answers a hit with a 307 whose URL serves the right bytes', async () => {
    const image = bench.images.large!;
    const layer = image.manifests[0]!.layers[0]!;
    await restart(layoverOverBucket({ BLOB_REDIRECT: 'presigned' }));
    const url = `https://${INTERCEPTED_HOST}/v2/${image.repository}/blobs/${layer.digest}`;
    const miss = await curl(bench, url);
    expect(miss.status).toBe(200);
    expect(sha256(miss.body)).toBe(layer.digest);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === layer.digest, 20_000);

    bench.registry.clearRequests();
    const hit = await curl(bench, url);
    expect(hit.status).toBe(307);
    expect(hit.headers['cache-control']).toBe('no-store');
    const location = new URL(hit.headers.location!);
    expect(location.host).toBe(S3_ADDRESS);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('300');
    const fetched = await bench.sandbox.exec('curl', ['-sS', '--cacert', bench.ca.certFile, '-o', join(bench.sandbox.dir, 'presigned'), location.href]);
    expect(fetched.code).toBe(0);
    expect(sha256(readFileSync(join(bench.sandbox.dir, 'presigned')))).toBe(layer.digest);
    expect(await upstreamBlobGets()).toBe(0);
  }, 60_000);

  it('a Layover whose bucket cannot be used says so in one line and exits 2', async () => {
    const { env } = layoverOverBucket({ BLOB_STORE: `s3://no-such-bucket/replicas?endpoint=https://${S3_ADDRESS}&region=us-east-1` });
    const dataDir = join(bench.sandbox.dir, 'no-bucket');
    const result = await bench.sandbox.exec(process.execPath, [LAYOVER_CLI, 'cache', 'stats', '--data-dir', dataDir], { env: env!, timeoutMs: 60_000 });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      `layover: cannot open the blob cache in ${join(dataDir, 'cache')}: BLOB_STORE: cannot use s3://no-such-bucket/replicas at https://${S3_ADDRESS}: NotFound (HTTP 404) (no such bucket)`,
    ]);
  }, 60_000);

  it('while the storage is down, a hit and a miss are served from the upstream, uncached', async () => {
    const address = '127.0.0.6';
    const tls = await bench.ca.issue('s3-down', [address]);
    const storage = await startFixture(bench.sandbox, S3_FIXTURE, ['--listen', `${address}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--dir', join(bench.sandbox.dir, 's3-down'), '--bucket', BUCKET]);
    await restart(layoverOverBucket({ BLOB_STORE: `s3://${BUCKET}/down?endpoint=https://${address}&region=us-east-1` }));
    const image = bench.images.large!;
    const [cached, uncached] = [image.manifests[0]!.config, image.manifests[0]!.layers[0]!];
    const url = (digest: string): string => `https://${INTERCEPTED_HOST}/v2/${image.repository}/blobs/${digest}`;
    await curl(bench, url(cached.digest));
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === cached.digest, 20_000);

    storage.child.kill('SIGKILL');
    await new Promise((resolve) => (storage.child.exitCode === null && storage.child.signalCode === null ? storage.child.once('exit', resolve) : resolve(null)));
    bench.registry.clearRequests();
    const hit = await curl(bench, url(cached.digest));
    expect(hit.status).toBe(200);
    expect(sha256(hit.body)).toBe(cached.digest);
    const miss = await curl(bench, url(uncached.digest));
    expect(miss.status).toBe(200);
    expect(sha256(miss.body)).toBe(uncached.digest);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill dropped' && l.digest === uncached.digest, 30_000);
    expect(await upstreamBlobGets()).toBe(2);
    expect(bench.layover!.logs().find((l) => l.msg === 'request' && l.digest === cached.digest && l.cache === 'pass')).toBeDefined();
  }, 90_000);

  it('with BLOB_REDIRECT=presigned, a hit while the storage is down is served from the upstream, never redirected to the dead bucket', async () => {
    const address = '127.0.0.9';
    const tls = await bench.ca.issue('s3-down-presigned', [address]);
    const storage = await startFixture(bench.sandbox, S3_FIXTURE, ['--listen', `${address}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--dir', join(bench.sandbox.dir, 's3-down-presigned'), '--bucket', BUCKET]);
    await restart(layoverOverBucket({ BLOB_STORE: `s3://${BUCKET}/down-presigned?endpoint=https://${address}&region=us-east-1`, BLOB_REDIRECT: 'presigned' }));
    const image = bench.images.large!;
    const cached = image.manifests[0]!.config;
    const url = `https://${INTERCEPTED_HOST}/v2/${image.repository}/blobs/${cached.digest}`;
    await curl(bench, url);
    await bench.layover!.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === cached.digest, 20_000);
    expect((await curl(bench, url)).status).toBe(307);

    storage.child.kill('SIGKILL');
    await new Promise((resolve) => (storage.child.exitCode === null && storage.child.signalCode === null ? storage.child.once('exit', resolve) : resolve(null)));
    bench.registry.clearRequests();
    const hit = await curl(bench, url);
    expect(hit.status).toBe(200);
    expect(sha256(hit.body)).toBe(cached.digest);
    expect(await upstreamBlobGets()).toBe(1);
  }, 90_000);
});
