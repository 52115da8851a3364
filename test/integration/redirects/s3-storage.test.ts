/**
 * The real distribution registry with its s3 storage driver against a loopback S3 server
 * (test/fixtures/s3-server.mjs: s3rver behind TLS on 127.0.0.5), so blob GETs really answer 307 to
 * presigned storage URLs, and skopeo pulls through the real Layover process. With REDIRECTS=rewrite
 * skopeo follows Layover's 307 to docker.proxy, Layover fetches the presigned URL, verifies the
 * digest and caches the blob, and a second pull never reaches the storage host. With
 * REDIRECTS=follow skopeo never sees a redirect. s3rver's request log tells presigned fetches (a
 * signature in the query) from the registry's own API calls, and who made them (User-Agent).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import type { LogLine } from '../../bench/layover-process.js';
import { type FixtureProcess, startFixture } from '../../bench/fixture-process.js';

const S3_ADDRESS = '127.0.0.5';
const S3_FIXTURE = fileURLToPath(new URL('../../fixtures/s3-server.mjs', import.meta.url));
const ALLOW_S3 = { 'redirect-allow-networks': `${S3_ADDRESS}/32` };

let bench: Bench;
let s3: FixtureProcess;
beforeAll(async () => {
  bench = await startBench({
    images: ['oci', 'large'],
    layover: { flags: ALLOW_S3 },
    beforeRegistry: async (sandbox, ca) => {
      const tls = await ca.issue('s3', [S3_ADDRESS]);
      const dir = join(sandbox.dir, 's3');
      s3 = await startFixture(sandbox, S3_FIXTURE, ['--listen', `${S3_ADDRESS}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--dir', dir, '--bucket', 'layover']);
      return {
        storage: {
          s3: {
            accesskey: 'S3RVER',
            secretkey: 'S3RVER',
            region: 'us-east-1',
            regionendpoint: `https://${S3_ADDRESS}`,
            bucket: 'layover',
            secure: true,
            v4auth: true,
            // The registry's own calls to S3; Layover's storage fetches verify TLS against the test CA.
            skipverify: true,
          },
          redirect: { disable: false },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
      };
    },
  });
}, 180_000);
afterAll(() => bench?.close());

/** Presigned GETs of blob data at the storage host (not the registry's signed API calls). */
const presigned = async () => {
  await s3.sync(`https://${S3_ADDRESS}`, bench.ca.certFile);
  return s3.requests().filter((r) => r.presigned === true);
};
const blobGets = async () => {
  await bench.registry.sync();
  return bench.registry.requests().filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
};
const hexOf = (digest: string): string => digest.split(':')[1]!;
/**
 * The request log line of each digest's request to `host` that matches `match`, waiting for each:
 * Layover writes it when the response has finished, which can be after skopeo has exited.
 */
const requestLinesFor = (host: string, expected: string[], match: (line: LogLine) => boolean = () => true): Promise<LogLine[]> =>
  Promise.all(expected.map((digest) => bench.layover!.waitForLog((l) => l.msg === 'request' && l.host === host && l.digest === digest && match(l))));
const digests = (images: PushedImage[]): string[] => [...new Set(images.flatMap((i) => i.blobs.map((b) => b.digest)))].sort();

/** Pulls with skopeo through Layover; every blob file must hash to its name and every blob be there. */
async function pull(image: PushedImage, name: string): Promise<void> {
  const dir = join(bench.sandbox.dir, name);
  await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), dir);
  const files = readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f));
  for (const file of files) expect(createHash('sha256').update(readFileSync(join(dir, file))).digest('hex')).toBe(file);
  expect(files.sort()).toEqual(image.blobs.map((b) => hexOf(b.digest)).sort());
}

describe('REDIRECTS=rewrite against the registry’s S3 storage', () => {
  it('skopeo follows docker.proxy; Layover fetches each blob once from S3 and caches it; a second pull never touches S3', async () => {
    const images = [bench.images.oci!, bench.images.large!];
    const expected = digests(images);
    for (const image of images) await pull(image, `rewrite-1-${image.key}`);

    // The registry really redirected every blob GET (that is what makes this test meaningful).
    const registryGets = await blobGets();
    expect([...new Set(registryGets.map((r) => r.status))]).toEqual([307]);
    expect(registryGets.map((r) => `sha256:${r.path.split('sha256:')[1]}`).sort()).toEqual(expected);

    // skopeo followed to docker.proxy: one 200 per blob there.
    const layover = bench.layover!;
    const viaDockerProxy = await requestLinesFor('docker.proxy', expected);
    expect(viaDockerProxy.map((l) => l.status)).toEqual(expected.map(() => 200));
    expect(layover.logs().filter((l) => l.msg === 'request' && l.host === 'docker.proxy')).toHaveLength(expected.length);
    for (const digest of expected) await layover.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === digest, 20_000);

    // Layover, never skopeo, fetched each presigned URL, once.
    const fetched = await presigned();
    expect(fetched.map((r) => r.userAgent)).toEqual(expected.map(() => 'layover'));
    expect(fetched.map((r) => String(r.path).split('/').at(-2)).sort()).toEqual(expected.map(hexOf));

    for (const image of images) await pull(image, `rewrite-2-${image.key}`);
    expect(await presigned()).toHaveLength(fetched.length);
    expect(await blobGets()).toHaveLength(registryGets.length);
    const hits = await requestLinesFor(INTERCEPTED_HOST, expected, (l) => l.cache === 'hit');
    expect(hits.map((l) => l.status)).toEqual(expected.map(() => 200));
  }, 180_000);
});

describe('REDIRECTS=follow against the registry’s S3 storage', () => {
  beforeAll(async () => {
    await bench.layover!.stop();
    await bench.startLayover({ flags: { ...ALLOW_S3, redirects: 'follow' } });
  }, 60_000);

  it('the client never sees a redirect; Layover fetches from S3 once per blob; a second pull never touches S3', async () => {
    const image = bench.images.oci!;
    const expected = digests([image]);
    const before = (await presigned()).length;
    const gets = (await blobGets()).length;

    await pull(image, 'follow-1');
    const layover = bench.layover!;
    const blobLines = await requestLinesFor(INTERCEPTED_HOST, expected);
    expect(blobLines.map((l) => `${l.status} ${l.redirect} ${l.storage}`)).toEqual(expected.map(() => `200 follow ${S3_ADDRESS}`));
    const requests = layover.logs().filter((l) => l.msg === 'request');
    expect(requests.filter((l) => Number(l.status) >= 300 && Number(l.status) < 400)).toEqual([]);
    expect(requests.filter((l) => l.host === 'docker.proxy')).toEqual([]);
    expect((await blobGets()).slice(gets).map((r) => r.status)).toEqual(expected.map(() => 307));

    const fetched = (await presigned()).slice(before);
    expect(fetched.map((r) => `${r.userAgent} ${String(r.path).split('/').at(-2)}`).sort()).toEqual(expected.map((d) => `layover ${hexOf(d)}`));
    for (const digest of expected) await layover.waitForLog((l) => l.msg === 'cache fill committed' && l.digest === digest, 20_000);

    await pull(image, 'follow-2');
    expect(await presigned()).toHaveLength(before + fetched.length);
  }, 120_000);
});
