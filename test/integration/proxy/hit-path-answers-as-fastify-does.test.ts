import { Agent, request as httpsRequest } from 'node:https';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HitPath } from '../../../src/proxy/hit-path.js';
import type { LogLine } from '../../helpers/capture-logger.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { parseExposition } from '../../unit/metrics/exposition.js';
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { tagRecordKey } from '../../../src/proxy/manifest-route.js';
import { digestOf } from '../../../src/registry/digest.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import { HOST, large, manifest, manifestDigest, OCI_MANIFEST, REPO, seed, small, TAG } from './cached-hits-fixture.js';

// Two in-process Layovers with the same cached content: one answers hits on its hit path
// (src/proxy/hit-path.ts), the other sends every request through fastify. Everything here is a
// hit or is refused before any upstream: the upstream resolver is a closed loopback port, so a
// request that went upstream would fail the comparison instead of leaving the host.
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function ask(layover: RunningLayover, path: string, options: { method?: string; headers?: Record<string, string>; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: layover.addresses.https.port, servername: HOST, ca: layover.app.ca.certPem, path, method: options.method ?? 'GET', headers: { host: HOST, ...options.headers }, agent: options.agent ?? false },
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

/**
 * The request on a keep-alive connection whose first request (a malformed digest) was not the hit path's to
 * answer: src/proxy/hit-connections.ts has handed the connection to Node's HTTP server, and the hit
 * path answers there (HitPath.answer), before fastify.
 */
async function askAfterHandOver(layover: RunningLayover, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    expect((await ask(layover, `/v2/${REPO}/manifests/sha256:zz`, { agent })).status).toBe(400);
    return await ask(layover, path, { ...options, agent });
  } finally {
    agent.destroy();
  }
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
    // Read off the connection's bytes (a connection of their own: the first request on it) and, after
    // a hand-over to Node's HTTP server, from Node's request (HitPath.answer).
    const decided = vi.spyOn(HitPath.prototype, 'hitFor');
    const answeredByNode = vi.spyOn(HitPath.prototype, 'answer');
    try {
      for (const r of REQUESTS) {
        for (const [how, askHow] of [['off the bytes', ask], ['after a hand-over', askAfterHandOver]] as const) {
          const what = `${r.what}, ${how}`;
          const before = { fast: requestLines(fast.logs, r.path).length, slow: requestLines(slow.logs, r.path).length };
          decided.mockClear();
          answeredByNode.mockClear();
          const viaHitPath = await askHow(fast, r.path, { method: r.method, headers: r.headers });
          // After a hand-over: the malformed digest asked about off the bytes and again from Node's request, then the hit.
          expect(decided.mock.results.map((result) => result.value !== undefined), what).toEqual(how === 'off the bytes' ? [true] : [false, false, true]);
          expect(answeredByNode.mock.results.map((result) => result.value), what).toEqual(how === 'off the bytes' ? [] : [false, true]);
          const viaFastify = await askHow(slow, r.path, { method: r.method, headers: r.headers });
          expect(viaHitPath.status, what).toBe(200);
          expect(comparable(viaHitPath), what).toEqual(comparable(viaFastify));
          await vi.waitFor(() => expect(requestLines(fast.logs, r.path)).toHaveLength(before.fast + 1));
          await vi.waitFor(() => expect(requestLines(slow.logs, r.path)).toHaveLength(before.slow + 1));
          expect(requestLines(fast.logs, r.path).at(-1), what).toEqual(requestLines(slow.logs, r.path).at(-1));
          expect(requestLines(fast.logs, r.path).at(-1), what).toMatchObject({ cache: 'hit', access: 'anonymous', status: 200 });
        }
      }
    } finally {
      decided.mockRestore();
      answeredByNode.mockRestore();
    }
    expect(await servedSeries(fast)).toEqual(await servedSeries(slow));
    expect((await servedSeries(fast)).some((series) => series.includes('"cache":"hit"'))).toBe(true);
  });

  it('leaves to fastify what it cannot answer at once, whose answers stay fastify\'s', async () => {
    const answered = vi.spyOn(HitPath.prototype, 'hitFor');
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
      // None was the hit path's, whether asked off the bytes or (a range, a body) from Node's request.
      expect(answered.mock.results.length).toBeGreaterThanOrEqual(4);
      expect(answered.mock.results.every((result) => result.value === undefined)).toBe(true);
    } finally {
      answered.mockRestore();
    }
  });

  it('answers a tag that moved with its new manifest, not with the answer it gave before', async () => {
    const tagPath = `/v2/${REPO}/manifests/${TAG}`;
    const decided = vi.spyOn(HitPath.prototype, 'hitFor');
    try {
      for (const method of ['GET', 'HEAD']) {
        const before = await ask(fast, tagPath, { method, headers: { accept: OCI_MANIFEST } });
        expect(before.headers['docker-content-digest']).toBe(manifestDigest);
      }
      // The tag now names another manifest, as after a pull that found it moved upstream.
      const moved = Buffer.from(manifest.toString().replace('"layers":[]', '"layers":[],"annotations":{"moved":"yes"}'));
      const movedDigest = digestOf(moved);
      const { cache } = fast.app;
      await cache.put(movedDigest, moved, { size: moved.length, mediaType: OCI_MANIFEST, kind: 'manifest', source: `${HOST}/${REPO}` });
      await new AccessRecords(cache).addMember(movedDigest, repositoryKey(`https://${HOST}`, REPO));
      await cache.setRecord(tagRecordKey(HOST, REPO as RepositoryName, TAG, OCI_MANIFEST), { digest: movedDigest, fetchedAt: Date.now() });
      decided.mockClear();
      const get = await ask(fast, tagPath, { headers: { accept: OCI_MANIFEST } });
      const head = await ask(fast, tagPath, { method: 'HEAD', headers: { accept: OCI_MANIFEST } });
      // Both answered by the hit path, with the moved manifest.
      expect(decided.mock.results.map((result) => result.value !== undefined)).toEqual([true, true]);
      expect(get.body).toEqual(moved);
      for (const answer of [get, head]) {
        expect(answer.headers['docker-content-digest']).toBe(movedDigest);
        expect(answer.headers['content-length']).toBe(String(moved.length));
      }
      await vi.waitFor(() => expect(fast.logs.filter((line) => line.msg === 'request' && line.url === tagPath).at(-2)).toMatchObject({ method: 'GET', bytes: moved.length, cache: 'hit' }));
    } finally {
      decided.mockRestore();
    }
  });

  it('counts its hits on the status page as soon as the page is read', async () => {
    const hits = async (): Promise<number> => {
      const view = (await (await fetch(`http://127.0.0.1:${fast.addresses.http!.port}/status.json`)).json()) as { metrics: Record<string, { value: number | null }> };
      return view.metrics['hour-hits']!.value!;
    };
    const path = `/v2/${REPO}/manifests/${manifestDigest}`;
    const lines = (): number => requestLines(fast.logs, path).length;
    const before = { hits: await hits(), lines: lines() };
    for (let i = 0; i < 3; i++) expect((await ask(fast, path)).status).toBe(200);
    // Counted once each answer is out, as its log line is written; the page must show them when read.
    await vi.waitFor(() => expect(lines()).toBe(before.lines + 3));
    expect(await hits()).toBe(before.hits + 3);
  });
});
