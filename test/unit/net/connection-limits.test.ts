/**
 * ConnectionLimits on real servers and real sockets on loopback: which connection goes when a cap
 * is reached. Busy connections (a request in flight) are never shed, so when nothing else is left
 * the newcomer is refused; a per-client cap never costs another client its connection; a
 * connection still in its TLS handshake goes before one that is merely idle.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { connect as http2Connect, createSecureServer, type Http2ServerResponse } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConnectionLimits, type ConnectionCaps } from '../../../src/net/connection-limits.js';
import { createTestCa } from '../../bench/test-ca.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { destroyAll, eventually, openSilentSockets, type SilentSocket } from '../../integration/net/client-sockets.js';

let dir: string;
let tlsFiles: { cert: string; key: string; ca: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-limits-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('server', ['limits.test']);
  tlsFiles = { cert: readFileSync(leaf.certFile, 'utf8'), key: readFileSync(leaf.keyFile, 'utf8'), ca: readFileSync(ca.certFile, 'utf8') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Requests to /hold are answered only when the test says so; anything else at once. */
async function listen(server: Server, caps: ConnectionCaps, tls: boolean) {
  const { logger, lines } = captureLogger('info');
  const limits = new ConnectionLimits('test', caps, logger);
  limits.attach(server, { tls });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    (server as Server & { closeAllConnections?(): void }).closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  });
  return { limits, lines, port: (server.address() as AddressInfo).port };
}

function holdingHttpServer() {
  const held: ServerResponse[] = [];
  const server = createHttpServer((req, res) => (req.url === '/hold' ? held.push(res) : res.end('ok')));
  return { server, held };
}

/** A connection from `localAddress` that sends one keep-alive request and stays open; for `/hold`, without waiting for an answer. */
async function startRequest(port: number, path: string, localAddress = '127.0.0.1'): Promise<SilentSocket> {
  const [connection] = await openSilentSockets(port, 1, localAddress);
  onTestFinished(() => destroyAll([connection!]));
  await sendRequest(connection!, path);
  return connection!;
}

/** Writes a GET by hand (Node's client would close the connection after the answer); resolves once it is answered, or at once for `/hold`. */
async function sendRequest({ socket }: SilentSocket, path: string): Promise<void> {
  socket.write(`GET ${path} HTTP/1.1\r\nHost: limits.test\r\n\r\n`);
  if (path === '/hold') return;
  let text = '';
  while (!text.endsWith('\r\n\r\nok')) text += String(((await once(socket, 'data')) as [Buffer])[0]);
}

describe('ConnectionLimits', () => {
  it('never sheds a connection with a request in flight: with nothing idle the newcomer is refused', async () => {
    const { server, held } = holdingHttpServer();
    const { port, limits, lines } = await listen(server, { maxPerListener: 3, maxPerClient: 0 }, false);
    const busy = [await startRequest(port, '/hold'), await startRequest(port, '/hold'), await startRequest(port, '/hold')];
    expect(await eventually(() => held.length === 3)).toBe(true);
    const [newcomer] = await openSilentSockets(port, 1, '127.0.0.2');
    onTestFinished(() => destroyAll([newcomer!]));
    expect(await eventually(() => newcomer!.closed)).toBe(true);
    expect(busy.map((s) => s.closed)).toEqual([false, false, false]);
    expect(limits.size).toBe(3);
    expect(lines.find((line) => line.msg.startsWith('connection cap reached'))).toMatchObject({ level: 40, listener: 'test', refused: 1, shed: 0 });

    // One answer later, that keep-alive connection is idle: the next newcomer takes its place.
    held[0]!.end('done');
    await once(busy[0]!.socket, 'data');
    const [second] = await openSilentSockets(port, 1, '127.0.0.2');
    onTestFinished(() => destroyAll([second!]));
    expect(await eventually(() => busy[0]!.closed)).toBe(true);
    expect([busy[1]!.closed, busy[2]!.closed, second!.closed]).toEqual([false, false, false]);
  });

  it('sheds the idle connection of the longest standing before a newer idle one', async () => {
    const { server } = holdingHttpServer();
    const { port } = await listen(server, { maxPerListener: 3, maxPerClient: 0 }, false);
    const first = await startRequest(port, '/');
    const second = await startRequest(port, '/');
    const third = await startRequest(port, '/');
    // The oldest connection serves another request: now the second has been idle longest.
    await sendRequest(first, '/');
    const [newcomer] = await openSilentSockets(port, 1, '127.0.0.1');
    onTestFinished(() => destroyAll([newcomer!]));
    expect(await eventually(() => second.closed)).toBe(true);
    expect([first.closed, third.closed, newcomer!.closed]).toEqual([false, false, false]);
  });

  it('a per-client cap sheds that client\'s own connections, never another client\'s', async () => {
    const { server } = holdingHttpServer();
    const { port, limits } = await listen(server, { maxPerListener: 0, maxPerClient: 3 }, false);
    const other = await openSilentSockets(port, 1, '127.0.0.2');
    const flood = await openSilentSockets(port, 6, '127.0.0.1');
    onTestFinished(() => destroyAll([...other, ...flood]));
    expect(await eventually(() => flood.filter((s) => s.closed).length === 3)).toBe(true);
    expect(flood.map((s) => s.closed)).toEqual([true, true, true, false, false, false]);
    expect(other[0]!.closed).toBe(false);
    expect(limits.size).toBe(4);
  });

  it('on a TLS listener, a connection still in its handshake goes before an idle one that finished it', async () => {
    const server = createHttpsServer({ cert: tlsFiles.cert, key: tlsFiles.key }, (_req, res) => res.end('ok'));
    const { port } = await listen(server, { maxPerListener: 2, maxPerClient: 0 }, true);
    const secured = tlsConnect({ host: '127.0.0.1', port, servername: 'limits.test', ca: tlsFiles.ca });
    let securedClosed = false;
    secured.once('close', () => (securedClosed = true)).on('error', () => undefined);
    onTestFinished(() => void secured.destroy());
    await once(secured, 'secureConnect');
    // An answer proves the server has finished its side of the handshake too.
    secured.write('GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n');
    await once(secured, 'data');
    const silent = await openSilentSockets(port, 2, '127.0.0.2');
    onTestFinished(() => destroyAll(silent));
    expect(await eventually(() => silent[0]!.closed)).toBe(true);
    expect([securedClosed, silent[1]!.closed]).toEqual([false, false]);
  });

  it('HTTP/2: a session with a stream in flight is busy, found through the Proxy of its socket that requests carry', async () => {
    const held: Http2ServerResponse[] = [];
    const server = createSecureServer({ cert: tlsFiles.cert, key: tlsFiles.key }, (_req, res) => held.push(res));
    const { port } = await listen(server as unknown as Server, { maxPerListener: 1, maxPerClient: 0 }, true);
    const session = http2Connect(`https://limits.test:${port}`, { host: '127.0.0.1', servername: 'limits.test', ca: tlsFiles.ca });
    let sessionClosed = false;
    session.once('close', () => (sessionClosed = true)).on('error', () => undefined);
    onTestFinished(() => void session.destroy());
    session.request({ ':path': '/hold' }).on('error', () => undefined);
    expect(await eventually(() => held.length === 1)).toBe(true);
    const [newcomer] = await openSilentSockets(port, 1, '127.0.0.2');
    onTestFinished(() => destroyAll([newcomer!]));
    expect(await eventually(() => newcomer!.closed)).toBe(true);
    expect(sessionClosed).toBe(false);
  });
});
