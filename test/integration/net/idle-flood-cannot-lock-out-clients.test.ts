/**
 * Regression test: 443, 80 and 3128 accepted connections without limit, so one client holding
 * thousands of silent sockets exhausted the file descriptors and nobody else (not even /healthz)
 * got through. Now each listener caps its connections (MAX_CONNECTIONS) and those of one client
 * address (MAX_CONNECTIONS_PER_CLIENT); at a cap the oldest connection still in its TLS handshake,
 * else the one idle longest, is shed for the newcomer. The whole app on loopback; the flood comes
 * from 127.0.0.x source addresses; TLS_HANDSHAKE_TIMEOUT is long here so that only the caps close
 * anything.
 */
import { once } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { sendConnect, startTls } from '../connect-proxy/connect-client.js';
import { destroyAll, eventually, httpGetFrom, httpsGetFrom, openSilentSockets, type SilentSocket } from './client-sockets.js';

const running: RunningLayover[] = [];
const floods: SilentSocket[][] = [];
afterEach(async () => {
  // First the clients: Layover's close waits for its connections.
  for (const sockets of floods.splice(0)) destroyAll(sockets);
  await Promise.all(running.splice(0).map((layover) => layover.close()));
});
async function start(flags: Parameters<typeof startLayover>[0]): Promise<RunningLayover> {
  const layover = await startLayover({ 'tls-handshake-timeout': '120s', ...flags });
  running.push(layover);
  return layover;
}

async function flood(port: number, count: number, from: string | ((index: number) => string)): Promise<SilentSocket[]> {
  const sockets = await openSilentSockets(port, count, from);
  floods.push(sockets);
  return sockets;
}
const closedCount = (sockets: readonly SilentSocket[]): number => sockets.filter((s) => s.closed).length;

describe('one address floods a listener with silent connections', () => {
  it('443: it keeps MAX_CONNECTIONS_PER_CLIENT, its oldest are shed, and every client (that address too) is served', async () => {
    const layover = await start({ 'max-connections-per-client': '20' });
    const port = layover.addresses.https.port;
    const ca = layover.app.ca.certPem;
    const sockets = await flood(port, 70, '127.0.0.1');
    expect(await eventually(() => closedCount(sockets) >= 50)).toBe(true);
    expect(sockets.slice(0, 50).every((s) => s.closed)).toBe(true);
    expect(closedCount(sockets.slice(50))).toBe(0);

    expect(await httpsGetFrom('127.0.0.2', port, 'docker.proxy', '/healthz', ca)).toMatchObject({ status: 200 });
    expect(closedCount(sockets)).toBe(50);
    // The flooding address itself: its oldest silent socket makes room.
    expect(await httpsGetFrom('127.0.0.1', port, 'docker.proxy', '/healthz', ca)).toMatchObject({ status: 200 });
    expect(await eventually(() => sockets[50]!.closed)).toBe(true);
    expect(await httpGetFrom('127.0.0.1', layover.addresses.http!.port, '/healthz')).toMatchObject({ status: 200 });
  });

  it('80: the same on the plain HTTP listener, /healthz answers from that address', async () => {
    const layover = await start({ 'max-connections-per-client': '20' });
    const port = layover.addresses.http!.port;
    const sockets = await flood(port, 40, '127.0.0.1');
    expect(await eventually(() => closedCount(sockets) >= 20)).toBe(true);
    expect(sockets.slice(0, 20).every((s) => s.closed)).toBe(true);
    expect(await httpGetFrom('127.0.0.1', port, '/healthz')).toMatchObject({ status: 200, body: '{"status":"ok"}' });
  });
});

describe('many addresses flood a listener past MAX_CONNECTIONS', () => {
  it('443: the oldest silent connections are shed, a new client is served, /healthz on 80 answers', async () => {
    const layover = await start({ 'max-connections': '30', 'max-connections-per-client': '0' });
    const port = layover.addresses.https.port;
    const sockets = await flood(port, 40, (i) => `127.0.0.${10 + i}`);
    expect(await eventually(() => closedCount(sockets) >= 10)).toBe(true);
    expect(sockets.slice(0, 10).every((s) => s.closed)).toBe(true);
    expect(closedCount(sockets.slice(10))).toBe(0);

    expect(await httpsGetFrom('127.0.0.2', port, 'docker.proxy', '/healthz', layover.app.ca.certPem)).toMatchObject({ status: 200 });
    expect(await eventually(() => sockets[10]!.closed)).toBe(true);
    expect(await httpGetFrom('127.0.0.2', layover.addresses.http!.port, '/healthz')).toMatchObject({ status: 200 });
  });
});

/** GET over an open keep-alive connection; resolves at the end of the body and leaves the connection open. */
async function keepAliveGet(stream: TLSSocket, path: string, host: string): Promise<number> {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  for (;;) {
    const [chunk] = (await once(stream, 'data')) as [string];
    buffered += chunk;
    const end = buffered.indexOf('\r\n\r\n');
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(buffered)?.[1] ?? NaN);
    if (end !== -1 && buffered.length >= end + 4 + length) return Number(buffered.slice(9, 12));
  }
}

describe('CONNECT to an intercepted name on the proxy listener', () => {
  it('counts the connection once, as idle between requests: the oldest idle one is shed for a new CONNECT', async () => {
    const layover = await start({ 'max-connections-per-client': '3' });
    const port = layover.addresses.proxy!.port;
    const ca = layover.app.ca.certPem;
    const connections: Array<{ tls: TLSSocket; closed: boolean }> = [];
    for (let i = 0; i < 4; i++) {
      const answer = await sendConnect(port, 'docker.proxy:443');
      expect(answer.status).toBe(200);
      const tls = await startTls(answer.socket, 'docker.proxy', ca);
      const entry = { tls, closed: false };
      tls.on('error', () => undefined);
      tls.once('close', () => (entry.closed = true));
      floods.push([{ socket: tls, closed: false }]);
      connections.push(entry);
      expect(await keepAliveGet(tls, '/healthz', 'docker.proxy')).toBe(200);
    }
    expect(await eventually(() => connections[0]!.closed)).toBe(true);
    expect(connections.slice(1).map((c) => c.closed)).toEqual([false, false, false]);
    // The survivors still serve requests.
    expect(await keepAliveGet(connections[3]!.tls, '/healthz', 'docker.proxy')).toBe(200);
  });
});
