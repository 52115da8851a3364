import { request as httpsRequest } from 'node:https';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { HitPath } from '../../../src/proxy/hit-path.js';
import { tagRecordKey } from '../../../src/proxy/manifest-route.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { SMALL_BLOB_BYTES } from '../../../src/proxy/small-blob.js';
import type { Digest } from '../../../src/registry/digest.js';
import { digestOf } from '../../../src/registry/digest.js';
import type { LogLine } from '../../helpers/capture-logger.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { parseExposition } from '../../unit/metrics/exposition.js';
import { blob } from '../../unit/cache/cache-fixture.js';

// Two in-process Layovers with the same cached content: one answers hits on its hit path
// (src/proxy/hit-path.ts), the other sends every request through fastify. Everything here is a
// hit or is refused before any upstream: the upstream resolver is a closed loopback port, so a
// request that went upstream would fail the comparison instead of leaving the host.
const HOST = 'registry.test';
const REPO = 'team/app';
const TAG = 'v1';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [],
  }),
);
const manifestDigest = digestOf(manifest);
const small = blob(1500);
const large = blob(SMALL_BLOB_BYTES + 1000);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function ask(layover: RunningLayover, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: layover.addresses.https.port, servername: HOST, ca: layover.app.ca.certPem, path, method: options.method ?? 'GET', headers: { host: HOST, ...options.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Cached bytes and the records that let anyone read them (as after an anonymous pull). */
async function seed(layover: RunningLayover): Promise<void> {
  const { cache } = layover.app;
  await cache.put(manifestDigest, manifest, { size: manifest.length, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest', source: `${HOST}/${REPO}` });
  for (const b of [small, large]) await cache.put(b.digest, b.bytes, { size: b.bytes.length, mediaType: 'application/octet-stream', kind: 'blob', source: `${HOST}/${REPO}` });
  const records = new AccessRecords(cache);
  const repository = repositoryKey(`https://${HOST}`, REPO);
  for (const digest of [manifestDigest, small.digest, large.digest]) await records.addMember(digest as Digest, repository);
  await records.setReach('anonymous', repository, true, Date.now());
  // As after a pull of the tag with ENABLE_MANIFEST_CACHE on: fresh for its tier.
  await cache.setRecord(tagRecordKey(HOST, REPO as RepositoryName, TAG, OCI_MANIFEST), { digest: manifestDigest, fetchedAt: Date.now() });
}

const REQUESTS: Array<{ what: string; path: string; method: string; headers?: Record<string, string> }> = [
  { what: 'manifest by digest, GET', path: `/v2/${REPO}/manifests/${manifestDigest}`, method: 'GET' },
  { what: 'manifest by digest, HEAD', path: `/v2/${REPO}/manifests/${manifestDigest}`, method: 'HEAD' },
  { what: 'manifest by a fresh tag, GET', path: `/v2/${REPO}/manifests/${TAG}`, method: 'GET', headers: { accept: OCI_MANIFEST } },
  { what: 'manifest by a fresh tag, HEAD', path: `/v2/${REPO}/manifests/${TAG}`, method: 'HEAD', headers: { accept: OCI_MANIFEST } },
  { what: 'small blob, GET', path: `/v2/${REPO}/blobs/${small.digest}`, method: 'GET' },
  { what: 'blob, HEAD', path: `/v2/${REPO}/blobs/${large.digest}`, method: 'HEAD' },
];

/** What may differ between two answers to the same request. */
const comparable = (answer: Answer) => {
  const { date, 'x-request-id': id, ...headers } = answer.headers;
  expect(date).toBeDefined();
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  return { status: answer.status, headers, body: answer.body.toString('base64') };
};
const requestLines = (logs: LogLine[], path: string) =>
  logs.filter((line) => line.msg === 'request' && line.url === path).map(({ time, reqId, ms, ...rest }) => (expect(typeof reqId).toBe('string'), expect(typeof ms).toBe('number'), void time, rest));

async function servedSeries(layover: RunningLayover) {
  const res = await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/metrics`);
  return parseExposition(await res.text())
    .filter((s) => s.name === 'layover_requests_total' || s.name === 'layover_served_bytes_total')
    .map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`)
    .sort();
}

describe('the hit path', () => {
  let fast: RunningLayover;
  let slow: RunningLayover;
  beforeAll(async () => {
    fast = await startLayover({ registries: HOST }, { ENABLE_MANIFEST_CACHE: 'true' });
    slow = await startLayover({ registries: HOST }, { ENABLE_MANIFEST_CACHE: 'true' }, { hitPath: false });
    await seed(fast);
    await seed(slow);
    // The first GET reads the bytes into memory (through fastify on both): the hits below come from there.
    for (const layover of [fast, slow]) for (const r of REQUESTS) expect((await ask(layover, r.path, { method: r.method, headers: r.headers })).status).toBe(200);
  });
  afterAll(async () => {
    for (const layover of [fast, slow]) {
      await layover?.close();
      if (layover) rmSync(layover.dataDir, { recursive: true, force: true });
    }
  });

  it('answers cached manifests and small blobs with the bytes, headers, log line and metrics fastify gives them', async () => {
    const answered = vi.spyOn(HitPath.prototype, 'answer');
    try {
      for (const r of REQUESTS) {
        const before = { fast: requestLines(fast.logs, r.path).length, slow: requestLines(slow.logs, r.path).length };
        const viaHitPath = await ask(fast, r.path, { method: r.method, headers: r.headers });
        const viaFastify = await ask(slow, r.path, { method: r.method, headers: r.headers });
        expect(viaHitPath.status, r.what).toBe(200);
        expect(comparable(viaHitPath), r.what).toEqual(comparable(viaFastify));
        await vi.waitFor(() => expect(requestLines(fast.logs, r.path)).toHaveLength(before.fast + 1));
        await vi.waitFor(() => expect(requestLines(slow.logs, r.path)).toHaveLength(before.slow + 1));
        expect(requestLines(fast.logs, r.path).at(-1), r.what).toEqual(requestLines(slow.logs, r.path).at(-1));
        expect(requestLines(fast.logs, r.path).at(-1), r.what).toMatchObject({ cache: 'hit', access: 'anonymous', status: 200 });
      }
      // Each of them was the hit path's to answer (the other Layover has none).
      expect(answered.mock.results.map((result) => result.value)).toEqual(REQUESTS.map(() => true));
    } finally {
      answered.mockRestore();
    }
    expect(await servedSeries(fast)).toEqual(await servedSeries(slow));
    expect((await servedSeries(fast)).some((series) => series.includes('"cache":"hit"'))).toBe(true);
  });

  it('leaves to fastify what it cannot answer at once, whose answers stay fastify\'s', async () => {
    const answered = vi.spyOn(HitPath.prototype, 'answer');
    try {
      const smallPath = `/v2/${REPO}/blobs/${small.digest}`;
      // A range: fastify's 206.
      const part = await ask(fast, smallPath, { headers: { range: 'bytes=10-19' } });
      expect(part.status).toBe(206);
      expect(part.body).toEqual(small.bytes.subarray(10, 20));
      // A request with a body (here an empty one) is fastify's, with the same answer as a hit.
      const withBody = await ask(fast, smallPath, { headers: { 'content-length': '0' } });
      expect(withBody.status).toBe(200);
      expect(withBody.body).toEqual(small.bytes);
      // A blob bigger than the hit path holds in memory: streamed from its file by fastify's route.
      const big = await ask(fast, `/v2/${REPO}/blobs/${large.digest}`);
      expect(big.body).toEqual(large.bytes);
      // A repository the access records say nothing about: the access check must ask upstream, which is unreachable here.
      const elsewhere = await ask(fast, `/v2/team/other/manifests/${manifestDigest}`);
      expect(elsewhere.status).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(elsewhere.body.toString())).toMatchObject({ errors: [expect.objectContaining({ code: expect.any(String) })] });
      // A malformed digest: refused by fastify's routes in the OCI format.
      expect((await ask(fast, `/v2/${REPO}/manifests/sha256:zz`)).status).toBe(400);
      // The tag asked for with another Accept set: no record of it, so it is fastify's to ask upstream (unreachable here).
      expect((await ask(fast, `/v2/${REPO}/manifests/${TAG}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } })).status).toBeGreaterThanOrEqual(400);
      expect(answered.mock.results.map((result) => result.value)).toEqual([false, false, false, false, false, false]);
    } finally {
      answered.mockRestore();
    }
  });
});
