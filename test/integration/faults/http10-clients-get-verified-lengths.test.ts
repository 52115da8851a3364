/**
 * HTTP/1.0 has no chunked encoding: a body of no known length ends by the connection's close, and a
 * download that proved the bytes wrong ends the same way, after all but the last byte. A docker.proxy
 * download (REDIRECTS=rewrite) from a storage host that sends no Content-Length is therefore given to
 * an HTTP/1.0 client only once verified, from the cache, with its length; an answer passed through
 * uncached (a Range the upstream ignored) is not passed on without a length at all.
 *
 * The held-upstream fixture (chunked-redirect: its storage answers without Content-Length), dnsmasq,
 * Layover in this process; real curl over HTTP/1.0 (no ALPN: Layover refuses a client that offers
 * http/1.0 only).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HELD_HOST, type HeldBench, startHeldBench } from './held-upstream.js';

const run = promisify(execFile);
let bench: HeldBench;
let dir: string;
beforeAll(async () => {
  bench = await startHeldBench();
  dir = mkdtempSync(join(tmpdir(), 'layover-http10-'));
  writeFileSync(join(dir, 'ca.crt'), bench.layover.app.ca.certPem);
}, 60_000);
afterAll(async () => {
  await bench?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl over HTTP/1.0 to Layover on 127.0.0.1 as `held.test` or docker.proxy: status, lower-cased headers, body. */
async function http10(url: string, args: string[] = []): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const port = String(bench.upstream.port);
  const resolve = [HELD_HOST, 'docker.proxy'].flatMap((name) => ['--resolve', `${name}:${port}:127.0.0.1`]);
  await run('curl', ['-sS', '--max-time', '30', '--http1.0', '--no-alpn', '--cacert', join(dir, 'ca.crt'), ...resolve, '-D', join(dir, 'headers'), '-o', join(dir, 'body'), ...args, url]);
  const [statusLine, ...lines] = readFileSync(join(dir, 'headers'), 'utf8').trim().split(/\r?\n/);
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: readFileSync(join(dir, 'body')) };
}

// First: the blob is not cached yet, so the Range goes upstream.
it('an HTTP/1.0 client is not passed an uncached whole body without Content-Length (a Range the upstream ignored)', async () => {
  const { digest } = bench.upstream.blob;
  const passed = await http10(`https://${HELD_HOST}:${bench.upstream.port}/v2/chunked/app/blobs/${digest}`, ['-r', '0-99']);
  // Before the change: a 200 without Content-Length, unverified, ended by the close.
  expect(passed.status).toBe(502);
  expect(JSON.parse(passed.body.toString())).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
  expect(bench.layover.app.cache.stat(digest)).toBeUndefined();
});

it('an HTTP/1.0 client of a docker.proxy download without Content-Length gets the verified blob with its length', async () => {
  const { digest, bytes } = bench.upstream.blob;
  const redirect = await http10(`https://${HELD_HOST}:${bench.upstream.port}/v2/chunked-redirect/app/blobs/${digest}`);
  expect(redirect.status).toBe(307);
  expect(redirect.headers.location).toMatch(/^https:\/\/docker\.proxy[:/]/);
  // Before the change: a 200 without Content-Length, ended by the close whether or not the bytes matched.
  const blob = await http10(redirect.headers.location!);
  expect(blob.status).toBe(200);
  expect(blob.headers['content-length']).toBe(String(bytes.length));
  expect(blob.body.equals(bytes)).toBe(true);
});
