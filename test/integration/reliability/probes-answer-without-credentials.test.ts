/**
 * Issue 11: the liveness and readiness endpoints, in-process (buildApp + listenApp, real listeners).
 * /readyz says 503 until every listener is up and from the first moment of a stop, /livez 200
 * throughout; both answer on the HTTP listener, the HTTPS_PROXY listener and as docker.proxy, without
 * credentials even when client authentication is on (a kubelet or a load balancer has none), and say
 * nothing but the phase. HTTP/2 sessions are told to go (GOAWAY) as soon as the stop begins.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { connect as connectHttp2 } from 'node:http2';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, onTestFinished } from 'vitest';
import { closeApp } from '../../../src/app.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function withHtpasswd(flags: Record<string, string | boolean> = {}): Promise<RunningLayover> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-probes-'));
  dirs.push(dir);
  const file = join(dir, 'htpasswd');
  writeFileSync(file, execFileSync('htpasswd', ['-Bbn', 'alice', 'pw-al1ce-probe']));
  const layover = await startLayover({ 'client-auth': 'htpasswd', 'htpasswd-file': file, 'data-dir': join(dir, 'data'), ...flags });
  running.push(layover);
  return layover;
}

it('/readyz and /livez answer without credentials on every listener, and say only the phase', async () => {
  const layover = await withHtpasswd();
  const { app } = layover;
  const registryRoute = await app.https.inject({ method: 'GET', url: '/v2/', headers: { host: 'docker.proxy' } });
  expect(registryRoute.statusCode).toBe(401);
  for (const server of [app.http!, app.proxy!, app.https]) {
    const host = server === app.https ? 'docker.proxy' : '127.0.0.1';
    const ready = await server.inject({ method: 'GET', url: '/readyz', headers: { host } });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
    const live = await server.inject({ method: 'GET', url: '/livez', headers: { host } });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
  }
});

it('/readyz turns 503 the moment a stop begins, before the listeners close, while /livez stays 200', async () => {
  const layover = await withHtpasswd();
  const base = `http://127.0.0.1:${layover.addresses.http!.port}`;
  const closing = closeApp(layover.app, { drainMs: 1_000 });
  const ready = await fetch(`${base}/readyz`);
  expect(ready.status).toBe(503);
  expect(await ready.json()).toEqual({ status: 'stopping' });
  expect(ready.headers.get('connection')).toBe('close');
  expect((await fetch(`${base}/livez`)).status).toBe(200);
  await closing;
});

it('with LAYOVER_HTTP2=true, a stop sends every open HTTP/2 session a GOAWAY at once, before the drain ends', async () => {
  const layover = await withHtpasswd({ http2: true });
  const session = connectHttp2(`https://127.0.0.1:${layover.addresses.https.port}`, { servername: 'docker.proxy', ca: layover.app.ca.certPem });
  onTestFinished(() => void session.destroy());
  const livez = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':path': '/livez', ':authority': 'docker.proxy' });
    stream.on('response', (headers) => resolve(Number(headers[':status'])));
    stream.on('error', reject);
    stream.resume();
  });
  expect(livez).toBe(200);
  const goaway = once(session, 'goaway');
  const closing = closeApp(layover.app, { drainMs: 2_000 });
  await goaway;
  expect(layover.logs.filter((line) => line.msg === 'drain over: accepting no new connections')).toEqual([]);
  await closing;
  expect(layover.logs.filter((line) => line.msg === 'drain over: accepting no new connections')).toHaveLength(1);
});
