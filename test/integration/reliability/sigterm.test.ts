/**
 * Issue 5, reliability: SIGTERM. The real `layover serve` (dist/cli/main.js) as a child process on
 * loopback ports, with a client in the middle of a blob miss when SIGTERM arrives (the fixture upstream
 * sends half the blob, then the rest 1.5 s later, or never). Layover stops accepting connections at
 * once and lets the response finish, up to the grace period; a fill either commits or leaves no trace,
 * and a Layover started on the same data dir serves what was committed with the upstream gone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it, onTestFinished } from 'vitest';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { Digest } from '../../../src/registry/digest.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startLayover } from '../../helpers/start-layover.js';
import { type HostileUpstream, PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER } from '../hardening/hostile-upstream.js';

const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

interface Setup {
  upstream: HostileUpstream;
  dns: Dnsmasq;
  dataDir: string;
  registries: string;
  auth: Record<string, string>;
}

async function setUp(): Promise<Setup> {
  const upstream = await startHostileUpstream();
  onTestFinished(() => upstream.close());
  const dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'] } });
  onTestFinished(() => dns.stop());
  const registries = `${UPSTREAM_HOST}:${upstream.port}`;
  const auth = { AUTH_REGISTRIES: `${registries}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' };
  return { upstream, dns, dataDir: mkdtempSync(join(tmpdir(), 'layover-sigterm-')), registries, auth };
}

/** `layover serve` as a process; resolves once it listens. */
async function serve({ upstream, dns, dataDir, registries, auth }: Setup, extra: string[] = []) {
  const args = ['serve', '--data-dir', dataDir, '--https', '127.0.0.1:0', '--http', 'off', '--dns', 'off', '--proxy', 'off', '--advertise', '127.0.0.1'];
  args.push('--upstream-dns', `${dns.host}:${dns.port}`, '--upstream-ca', upstream.ca.certFile, '--registries', registries, ...extra);
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...auth }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  onTestFinished(() => void (child.exitCode === null && child.kill('SIGKILL')));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const logged = async (msg: string): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while (!output.includes(`"msg":"${msg}"`)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${msg}" line:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  await logged('layover is listening');
  return { child, exited, logged, output: () => output, ca: readFileSync(join(dataDir, 'ca', 'ca.crt'), 'utf8') };
}

/** GET through Layover; resolves once a quarter of the body arrived, with the rest as a promise. */
function startDownload(setup: Setup, ca: string, path: string): Promise<{ status: number; body: Promise<Buffer> }> {
  const size = setup.upstream.slow.bytes.length;
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: setup.upstream.port, servername: UPSTREAM_HOST, path, ca, headers: { host: setup.registries } }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      // A cut-off response resolves with what arrived: the test compares bytes.
      const body = new Promise<Buffer>((done) => {
        res.on('end', () => done(Buffer.concat(chunks)));
        res.on('error', () => done(Buffer.concat(chunks)));
        res.on('aborted', () => done(Buffer.concat(chunks)));
      });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (received >= size / 4) resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const connectResult = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });

/** Layover in-process on the same data dir, with the upstream gone. */
async function restart(setup: Setup) {
  await setup.upstream.stop();
  const { dataDir, registries, dns, upstream, auth } = setup;
  const again = await startLayover({ 'data-dir': dataDir, registries, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.ca.certFile }, auth);
  onTestFinished(() => again.close());
  const tmp = new CacheLayout(join(dataDir, 'cache')).tmpDir;
  return { again, tempFiles: existsSync(tmp) ? readdirSync(tmp) : [] };
}

it('SIGTERM: stops accepting, finishes the response in flight, commits its fill, and a restart serves it', async () => {
  const setup = await setUp();
  const layover = await serve(setup);
  const path = `/v2/slow/blobs/${setup.upstream.slow.digest}`;
  const { status, body } = await startDownload(setup, layover.ca, path);
  expect(status).toBe(200);
  layover.child.kill('SIGTERM');
  await layover.logged('shutting down');
  expect(await connectResult(setup.upstream.port)).toBe('ECONNREFUSED');
  expect((await body).equals(setup.upstream.slow.bytes)).toBe(true);
  const [code] = await layover.exited;
  expect(code, layover.output()).toBe(0);

  const { again, tempFiles } = await restart(setup);
  expect(tempFiles).toEqual([]);
  expect(again.app.cache.stat(setup.upstream.slow.digest as Digest)?.size).toBe(setup.upstream.slow.bytes.length);
  const cached = await startDownload(setup, layover.ca, path);
  expect((await cached.body).equals(setup.upstream.slow.bytes)).toBe(true);
}, 60_000);

/** SHUTDOWN_GRACE for the test below: short, to keep the run short; the default (25 s) is in the config tests. */
const SHUTDOWN_GRACE_MS = 3_000;

it(`SIGTERM with a response that cannot finish: exits after the ${SHUTDOWN_GRACE_MS / 1000} s grace, and the fill leaves no trace`, async () => {
  const setup = await setUp();
  // Timeouts longer than the grace period, so only the grace period can end the stalled response.
  const layover = await serve(setup, ['--proxy-read-timeout', '120s', '--send-timeout', '120s', '--shutdown-grace', `${SHUTDOWN_GRACE_MS}ms`]);
  const path = `/v2/stall/blobs/${setup.upstream.slow.digest}`;
  const { status, body } = await startDownload(setup, layover.ca, path);
  expect(status).toBe(200);
  const signalled = performance.now();
  layover.child.kill('SIGTERM');
  const [code] = await layover.exited;
  const ms = performance.now() - signalled;
  expect(code, layover.output()).toBe(1);
  expect(ms).toBeGreaterThanOrEqual(SHUTDOWN_GRACE_MS - 100);
  expect(ms).toBeLessThan(SHUTDOWN_GRACE_MS + 5_000);
  expect(layover.output()).toContain('grace period over');
  expect((await body).length).toBeLessThan(setup.upstream.slow.bytes.length);

  const { again, tempFiles } = await restart(setup);
  expect(tempFiles).toEqual([]);
  expect(again.app.cache.stat(setup.upstream.slow.digest as Digest)).toBeUndefined();
}, 60_000);
