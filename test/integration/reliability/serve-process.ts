/**
 * Shared by the SIGTERM tests: the real `layover serve` (dist/cli/main.js) as a child process on
 * loopback ports in front of the fixture upstream of the hardening tests (a registry that can send half
 * a blob and pause, which the real registry cannot do on demand), plus HTTPS clients that speak to it
 * by the upstream's name. Layover's registry-port listener takes the upstream's port on 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { type Agent, request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { releaseLoopbackTwins } from '../../helpers/loopback-twin-port.js';
import { startLayover } from '../../helpers/start-layover.js';
import { type HostileUpstream, PASSWORD, startHostileUpstream, UPSTREAM_HOST, USER } from '../hardening/hostile-upstream.js';

const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

export const FORWARDED_HOST = 'other.test';

export interface Setup {
  upstream: HostileUpstream;
  dns: Dnsmasq;
  dataDir: string;
  registries: string;
  auth: Record<string, string>;
}

export async function setUp(): Promise<Setup> {
  const upstream = await startHostileUpstream();
  onTestFinished(() => upstream.close());
  // other.test: a name Layover does not intercept, which it forwards to this resolver.
  const dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'], [FORWARDED_HOST]: ['192.0.2.7'] } });
  onTestFinished(() => dns.stop());
  const registries = `${UPSTREAM_HOST}:${upstream.port}`;
  const auth = { AUTH_REGISTRIES: `${registries}|${USER}|${PASSWORD}`, AUTH_REGISTRY_DELIMITER: '|' };
  return { upstream, dns, dataDir: mkdtempSync(join(tmpdir(), 'layover-sigterm-')), registries, auth };
}

export type ServeProcess = Awaited<ReturnType<typeof serve>>;

/** `layover serve` as a process; resolves once it listens. */
export async function serve({ upstream, dns, dataDir, registries, auth }: Setup, extra: string[] = []) {
  const args = ['serve', '--data-dir', dataDir, '--https', '127.0.0.1:0', '--http', 'off', '--dns', 'off', '--proxy', 'off', '--advertise', '127.0.0.1'];
  args.push('--upstream-dns', `${dns.host}:${dns.port}`, '--upstream-ca', upstream.ca.certFile, '--registries', registries, ...extra);
  await releaseLoopbackTwins();
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

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The request went out on a connection an earlier request had used (keep-alive). */
  reusedSocket: boolean;
}

/**
 * One GET to Layover, whole body: by the upstream's name, or `host` (e.g. docker.proxy for the service
 * routes); `agent` keeps the connection alive between calls.
 */
export function get(setup: Setup, ca: string, path: string, options: { agent?: Agent; host?: string } = {}): Promise<Answer> {
  const host = options.host ?? UPSTREAM_HOST;
  const headers = { host: options.host ? `${options.host}:${setup.upstream.port}` : setup.registries };
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: setup.upstream.port, servername: host, path, ca, agent: options.agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET through Layover; resolves once a quarter of the body arrived, with the rest as a promise. */
export function startDownload(setup: Setup, ca: string, path: string): Promise<{ status: number; body: Promise<Buffer>; abort: () => void }> {
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
        res.on('close', () => done(Buffer.concat(chunks)));
      });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (received >= size / 4) resolve({ status: res.statusCode ?? 0, body, abort: () => req.destroy() });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export const connectResult = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });

/** Layover in-process on the same data dir, with the upstream gone. */
export async function restart(setup: Setup) {
  await setup.upstream.stop();
  const { dataDir, registries, dns, upstream, auth } = setup;
  const again = await startLayover({ 'data-dir': dataDir, registries, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': upstream.ca.certFile }, auth);
  onTestFinished(() => again.close());
  const tmp = new CacheLayout(join(dataDir, 'cache')).tmpDir;
  return { again, tempFiles: existsSync(tmp) ? readdirSync(tmp) : [] };
}
