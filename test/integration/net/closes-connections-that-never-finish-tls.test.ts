/**
 * Regression test: a TCP connection to a TLS port that never sends a ClientHello (or stops halfway
 * through one) was held for Node's default handshake timeout of 120 s, so a client could pile up
 * idle sockets by the thousand (19,990 exhausted the file descriptors). Now every TLS listener
 * (443 with HTTP/1.1 or HTTP/2, the registry ports) and the TLS that Layover terminates inside an
 * intercepted CONNECT closes such a connection after TLS_HANDSHAKE_TIMEOUT. The whole app on
 * loopback; the bound checked is generous ("closed at all, well before 120 s").
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { sendConnect } from '../connect-proxy/connect-client.js';
import { destroyAll, eventually, httpsGetFrom, openSilentSockets } from './client-sockets.js';

const HANDSHAKE = { 'tls-handshake-timeout': '1s' };
/** 15 times the deadline: far from 120 s, far above any scheduling delay. */
const BOUND_MS = 15_000;

const running: RunningLayover[] = [];
const clients: Array<{ destroy(): void }> = [];
afterEach(async () => {
  // First the clients: Layover's close waits for its connections.
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(running.splice(0).map((layover) => layover.close()));
});
async function start(flags: Parameters<typeof startLayover>[0]): Promise<RunningLayover> {
  const layover = await startLayover({ ...HANDSHAKE, ...flags });
  running.push(layover);
  return layover;
}

/** A port number taken on 127.0.0.2 for the test's duration, for a registry configured as `name:port`. */
async function reservePort(): Promise<number> {
  const placeholder: Server = createServer();
  placeholder.listen(0, '127.0.0.2');
  await once(placeholder, 'listening');
  onTestFinished(() => void placeholder.close());
  return (placeholder.address() as AddressInfo).port;
}

async function expectSilentSocketsClosed(port: number): Promise<void> {
  const silent = await openSilentSockets(port, 5, '127.0.0.1');
  clients.push({ destroy: () => destroyAll(silent) });
  expect(await eventually(() => silent.every((s) => s.closed), BOUND_MS)).toBe(true);
}

describe('a connection that never finishes its TLS handshake is closed after TLS_HANDSHAKE_TIMEOUT', () => {
  it('on 443 (HTTP/1.1), while a real client is still served', async () => {
    const layover = await start({});
    await expectSilentSocketsClosed(layover.addresses.https.port);
    const answer = await httpsGetFrom('127.0.0.1', layover.addresses.https.port, 'docker.proxy', '/healthz', layover.app.ca.certPem);
    expect(answer.status).toBe(200);
  });

  it('on 443 with HTTP/2 on (LAYOVER_HTTP2)', async () => {
    const layover = await start({ http2: true });
    await expectSilentSocketsClosed(layover.addresses.https.port);
  });

  it('when the client stops in the middle of its ClientHello', async () => {
    const layover = await start({});
    const [half] = await openSilentSockets(layover.addresses.https.port, 1, '127.0.0.1');
    clients.push(half!.socket);
    // A handshake record header promising 512 bytes, then 3 of them.
    half!.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]));
    expect(await eventually(() => half!.closed, BOUND_MS)).toBe(true);
  });

  it('on the TLS listener of a registry port', async () => {
    const port = await reservePort();
    const layover = await start({ registries: `ports.test:${port}` });
    expect(layover.addresses.registryPorts.map((address) => address.port)).toEqual([port]);
    await expectSilentSocketsClosed(port);
  });

  it('inside a CONNECT to an intercepted name, whatever CLIENT_HEADER_TIMEOUT says', async () => {
    const layover = await start({ 'client-header-timeout': '60s' });
    const answer = await sendConnect(layover.addresses.proxy!.port, 'docker.proxy:443');
    expect(answer.status).toBe(200);
    let closed = false;
    answer.socket.once('close', () => (closed = true));
    answer.socket.on('error', () => undefined);
    clients.push(answer.socket);
    expect(await eventually(() => closed, BOUND_MS)).toBe(true);
  });
});
