/**
 * `layover serve` answers DNS before its cache has opened (a start loads the whole index first, 1.5 s
 * with 100,000 blobs), so that a restart takes the names of a node that resolves through Layover
 * away only for the process's own start. Until the HTTPS listener is up an intercepted name gets
 * SERVFAIL (a resolver then asks its next server), not an address where nothing accepts; then the
 * advertised address. The real CLI as a child process; its index a real redis-server frozen with
 * SIGSTOP so that the start waits on it, its bucket s3rver in this process (a shared index needs
 * shared blobs), its upstream resolver a real dnsmasq. DNS binds before the rest of Layover is even
 * loaded: what `serve` imports before it listens is checked by resolve hooks in a child process.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it, onTestFinished } from 'vitest';
import { dig, type DigResult } from '../../helpers/dig.js';
import { freePort, startDnsmasq } from '../../helpers/dnsmasq.js';
import { freezeServer } from '../../helpers/frozen-server.js';
import { startRedis } from '../../helpers/redis-server.js';
import { CLI } from '../../helpers/run-cli.js';
import { accepts, freeLoopbackPort } from '../../helpers/server-process.js';
import { startS3rver } from '../../unit/cache/s3rver-fixture.js';

/** Asks until `done` holds for the answer; fails if the child exits first or 20 s pass. */
async function digUntil(child: ChildProcess, output: () => string, port: number, name: string, done: (result: DigResult) => boolean): Promise<DigResult> {
  for (const deadline = Date.now() + 20_000; ; ) {
    if (child.exitCode !== null) throw new Error(`layover exited (${child.exitCode}): ${output()}`);
    const result = await dig(port, name, 'A', { time: 1 });
    if (done(result)) return result;
    if (Date.now() > deadline) throw new Error(`no such answer for ${name} in 20 s; last ${result.raw}\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it('forwards names while the index is unreachable, holds intercepted ones until HTTPS listens', async () => {
  const redis = await startRedis();
  onTestFinished(() => redis.close());
  const upstream = await startDnsmasq({ hostRecords: { 'other.test': ['192.0.2.7'], 'docker.proxy': ['192.0.2.66'] } });
  onTestFinished(() => upstream.stop());
  const s3 = await startS3rver();
  const dir = mkdtempSync(join(tmpdir(), 'layover-cli-dns-first-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const redirectKey = join(dir, 'redirect.key');
  writeFileSync(redirectKey, randomBytes(32), { mode: 0o600 });
  const dnsPort = await freePort('127.0.0.1');
  const httpsPort = await freeLoopbackPort();

  const thaw = await freezeServer(redis.port);
  const args = ['serve', '--upstream-dns', `${upstream.host}:${upstream.port}`, '--advertise', '127.0.0.1', '--dns', `127.0.0.1:${dnsPort}`, '--http', 'off', '--proxy', 'off', '--https', `127.0.0.1:${httpsPort}`];
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      BLOB_STORE: `s3://${s3.bucket}/dns-first?endpoint=${s3.endpoint}&region=us-east-1`,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      CACHE_INDEX: redis.url,
      REDIRECT_KEY_FILE: redirectKey,
      LAYOVER_DATA_DIR: join(dir, 'data'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => void child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  // The index answers nothing: the cache cannot have opened, and DNS forwards all the same.
  const forwarded = await digUntil(child, () => output, dnsPort, 'other.test', (result) => result.status === 'NOERROR');
  expect(forwarded.answers.map((a) => a.data)).toEqual(['192.0.2.7']);
  const held = await dig(dnsPort, 'docker.proxy', 'A');
  expect(held.status, held.raw).toBe('SERVFAIL');
  expect(held.raw).not.toContain('192.0.2.66');
  expect(await accepts('127.0.0.1', httpsPort)).toBe(false);
  expect(output).not.toContain('layover is listening');

  await thaw();
  const answered = await digUntil(child, () => output, dnsPort, 'docker.proxy', (result) => result.status === 'NOERROR');
  expect(answered.answers.map((a) => a.data)).toEqual(['127.0.0.1']);
  // Answered only once the listener it names accepts.
  expect(await accepts('127.0.0.1', httpsPort)).toBe(true);

  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [status] = await exited;
  expect(status, output).toBe(0);
}, 60_000);

it('binds DNS having loaded only what DNS needs: neither the app, fastify, undici nor the cache', () => {
  const serveModule = pathToFileURL(join(dirname(CLI), 'serve.js')).href;
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ resolve(specifier, context, next) { const found = next(specifier, context); loaded.push(found.url); return found; } });
    await import(${JSON.stringify(serveModule)});
    process.stdout.write(JSON.stringify(loaded));
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  const loaded = JSON.parse(child.stdout) as string[];
  // The hooks saw serve's imports: the DNS server's modules among them.
  expect(loaded.some((url) => url.endsWith('/dist/dns/dns-server.js'))).toBe(true);
  const heavy = /\/dist\/(app|cache\/blob-cache)\.js$|\/node_modules\/(fastify|@fastify\/[^/]+|undici|sqlite3|node-forge)\//;
  expect(loaded.filter((url) => heavy.test(url))).toEqual([]);
});
