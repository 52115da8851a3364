/**
 * Regression test: caps that add up to more than the process may open protect nothing, since the
 * descriptors run out first (the report: 19,990 sockets against a limit of 20,000). With a low
 * open-file limit (this test process's soft limit lowered with prlimit, as a small container or a
 * service with LimitNOFILE=1024 would have it) the default MAX_CONNECTIONS is lowered so that all
 * listeners at their cap keep half the limit free, said in a warning, and a flood from many
 * addresses then meets that cap: the oldest silent connections are shed and a client is served.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openFileLimit } from '../../../src/net/descriptor-budget.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { destroyAll, eventually, httpGetFrom, httpsGetFrom, openSilentSockets, type SilentSocket } from './client-sockets.js';

const LOWERED = 240;
let original: number | null;
let layover: RunningLayover | undefined;
let sockets: SilentSocket[] = [];

function setSoftLimit(openFiles: number): void {
  const hard = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output', 'HARD'], { encoding: 'utf8' }).trim();
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${openFiles}:${hard}`]);
}

beforeAll(() => {
  original = openFileLimit();
  setSoftLimit(LOWERED);
});
afterAll(async () => {
  destroyAll(sockets);
  await layover?.close();
  if (original !== null) setSoftLimit(original);
});

it('lowers MAX_CONNECTIONS to fit, says so, and the lowered cap sheds the oldest silent connections', async () => {
  expect(openFileLimit()).toBe(LOWERED);
  // 443, 80, 3128: three listeners at 240 / 2 / 3 = 40 connections each.
  layover = await startLayover({ 'max-connections-per-client': '0', 'tls-handshake-timeout': '120s' });
  // The default lowered is said at info level: that is how it is meant to work on a small limit.
  expect(layover.logs.find((line) => line.msg.startsWith('MAX_CONNECTIONS lowered'))).toMatchObject({ level: 30, maxConnections: 4096, applied: 40, listeners: 3 });

  const port = layover.addresses.https.port;
  sockets = await openSilentSockets(port, 50, (i) => `127.0.0.${10 + i}`);
  expect(await eventually(() => sockets.filter((s) => s.closed).length >= 10)).toBe(true);
  expect(sockets.slice(0, 10).every((s) => s.closed)).toBe(true);
  expect(await httpsGetFrom('127.0.0.2', port, 'docker.proxy', '/healthz', layover.app.ca.certPem)).toMatchObject({ status: 200 });
  expect(await httpGetFrom('127.0.0.2', layover.addresses.http!.port, '/healthz')).toMatchObject({ status: 200 });
});

it('warns when it lowers a MAX_CONNECTIONS the operator chose', async () => {
  destroyAll(sockets);
  sockets = [];
  await layover?.close();
  layover = await startLayover({ 'max-connections': '1000' });
  expect(layover.logs.find((line) => line.msg.startsWith('MAX_CONNECTIONS lowered'))).toMatchObject({ level: 40, maxConnections: 1000, applied: 40 });
});
