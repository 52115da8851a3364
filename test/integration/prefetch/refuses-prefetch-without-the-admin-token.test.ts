/**
 * Issue 12: POST /admin/prefetch makes Layover fetch from upstreams (and spend a Docker Hub budget):
 * only an admin may ask. Without the admin token, with a wrong one, or from outside
 * ADMIN_ALLOW_NETWORKS it is refused before anything is fetched: the upstream sees no request at all.
 * Real parts: `layover serve`, curl and the CLI inside the sandbox, the distribution registry.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import type { PushedImage } from '../../bench/images.js';
import { runPrefetch } from './prefetch-bench.js';

let bench: Bench;
let oci: PushedImage;
beforeAll(async () => {
  bench = await startBench({ images: ['oci'], seed: 'prefetch-refusals' });
  oci = bench.images.oci!;
}, 180_000);
afterAll(() => bench?.close());

const body = (): string => JSON.stringify({ images: [oci.ref(INTERCEPTED_HOST)] });

async function post(headers: string[]): Promise<{ status: number; body: string; headers: string }> {
  const result = await bench.sandbox.exec('curl', ['-sS', '-D', '-', '--max-time', '30', '-X', 'POST', '-H', 'content-type: application/json', ...headers.flatMap((h) => ['-H', h]), '--data', body(), 'http://127.0.0.1:80/admin/prefetch']);
  const [head = '', ...rest] = result.stdout.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body: rest.join('\r\n\r\n') };
}

async function expectNothingFetched(): Promise<void> {
  await bench.registry.sync();
  expect(bench.registry.requests()).toEqual([]);
}

it('refuses a request without the admin token (401 with a challenge), and fetches nothing', async () => {
  await bench.registry.sync();
  bench.registry.clearRequests();
  const answer = await post([]);
  expect(answer.status).toBe(401);
  expect(answer.headers).toMatch(/www-authenticate: Bearer realm="layover-admin"/i);
  expect(JSON.parse(answer.body)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
  await expectNothingFetched();
}, 60_000);

it('refuses a stranger before reading the body: the refusal comes while a megabyte it announced is still to come', async () => {
  const head = 'POST /admin/prefetch HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: application/json\\r\\nContent-Length: 1048576\\r\\n\\r\\n';
  // The head only: a guard that waited for the body would answer nothing before `timeout` ends the read.
  const script = `exec 3<>/dev/tcp/127.0.0.1/80; printf '${head}' >&3; timeout 10 head -c 12 <&3`;
  const result = await bench.sandbox.exec('bash', ['-c', script]);
  expect(result.stdout).toBe('HTTP/1.1 401');
  await expectNothingFetched();
}, 60_000);

it('refuses a wrong token and Basic credentials', async () => {
  const token = readFileSync(join(bench.layover!.dataDir, 'admin.token'), 'utf8').trim();
  for (const authorization of [`Bearer ${token.slice(0, -1)}x`, `Bearer ${token}${token}`, `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`]) {
    const answer = await post([`authorization: ${authorization}`]);
    expect(answer.status, authorization).toBe(401);
  }
  await expectNothingFetched();
}, 60_000);

it('the CLI with a wrong token file says the admin API refused it, and exits non-zero', async () => {
  const wrongToken = join(bench.sandbox.dir, 'wrong.token');
  writeFileSync(wrongToken, 'not-the-admin-token-of-this-layover\n');
  const result = await runPrefetch(bench, [oci.ref(INTERCEPTED_HOST)], { env: { ADMIN_TOKEN_FILE: wrongToken } });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain('answered 401: UNAUTHORIZED');
  await expectNothingFetched();
}, 60_000);

it('refuses even the right token from outside ADMIN_ALLOW_NETWORKS', async () => {
  const dataDir = bench.layover!.dataDir;
  await bench.layover!.stop();
  await bench.startLayover({ dataDir, env: { ADMIN_ALLOW_NETWORKS: '10.0.0.0/8' } });
  await bench.registry.sync();
  bench.registry.clearRequests();
  const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const answer = await post([`authorization: Bearer ${token}`]);
  expect(answer.status).toBe(403);
  expect(JSON.parse(answer.body)).toMatchObject({ errors: [{ code: 'DENIED' }] });
  await expectNothingFetched();
}, 60_000);

it('with the token, the same request is answered (the refusals above were about the token)', async () => {
  const dataDir = bench.layover!.dataDir;
  await bench.layover!.stop();
  await bench.startLayover({ dataDir });
  const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const answer = await post([`authorization: Bearer ${token}`]);
  expect(answer.status).toBe(200);
  expect(answer.headers).toMatch(/content-type: application\/x-ndjson/i);
  const lines = answer.body.trim().split('\n').map((line) => JSON.parse(line) as { event: string; ok?: string[] });
  expect(lines.at(-1)).toMatchObject({ event: 'summary', ok: [oci.ref(INTERCEPTED_HOST)], failed: [] });
}, 60_000);
