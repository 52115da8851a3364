/**
 * "What a new user hits": an unreachable upstream's 503 must name the real cause (ENETUNREACH was
 * reported as ECONNREFUSED). Layover runs in the bench's network namespace, which has only `lo`: an
 * upstream name resolving to 10.255.0.1 or fd00:dead::1 has no route there (ENETUNREACH, and nothing
 * leaves the namespace), one resolving to 127.0.0.5 finds a closed port (ECONNREFUSED), and one with
 * both addresses fails both ways at once through happy eyeballs: each answer carries its own reason.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Bench, startBench } from '../../bench/bench.js';

const HOSTS = {
  'noroute.test': ['10.255.0.1'],
  'noroute6.test': ['fd00:dead::1'],
  'closed.test': ['127.0.0.5'],
  'mixed.test': ['127.0.0.5', 'fd00:dead::1'],
};

let bench: Bench;
beforeAll(async () => {
  bench = await startBench({ images: [], extraRecords: HOSTS, layover: { flags: { registries: Object.keys(HOSTS).join(' '), 'proxy-connect-timeout': '10s' } } });
}, 120_000);
afterAll(() => bench?.close());

/** A blob GET through Layover inside the namespace: the status and the OCI error's first entry. */
async function askBlob(host: string): Promise<{ status: number; error: { code?: string; message?: string; detail?: { reason?: string; reasons?: string[] } } }> {
  const digest = `sha256:${'ab'.repeat(32)}`;
  const result = await bench.sandbox.exec('curl', ['-sS', '--max-time', '60', '--cacert', bench.layover!.caFile, '-w', '\n%{http_code}', `https://${host}/v2/library/app/blobs/${digest}`]);
  const lines = result.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  const body = JSON.parse(lines.join('\n')) as { errors: Array<{ code?: string; message?: string; detail?: { reason?: string; reasons?: string[] } }> };
  return { status, error: body.errors[0]! };
}

it.each([
  ['noroute.test', 'ENETUNREACH'],
  ['noroute6.test', 'ENETUNREACH'],
  ['closed.test', 'ECONNREFUSED'],
])('%s: 503 UNAVAILABLE naming %s', async (host, reason) => {
  const { status, error } = await askBlob(host);
  expect(status).toBe(503);
  expect(error).toMatchObject({ code: 'UNAVAILABLE', detail: { reason } });
  expect(error.message).toContain(reason);
}, 60_000);

it('an upstream failing both ways names the most telling cause first and lists every one', async () => {
  const { status, error } = await askBlob('mixed.test');
  expect(status).toBe(503);
  expect(error.detail?.reason).toBe('ECONNREFUSED');
  expect([...(error.detail?.reasons ?? [])].sort()).toEqual(['ECONNREFUSED', 'ENETUNREACH']);
}, 60_000);
