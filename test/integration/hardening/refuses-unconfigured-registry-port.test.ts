/**
 * Issue 10, item 9: any port in `Host` was dialled on an intercepted registry's host, which made
 * Layover a port scanner (its 503 told open ports from closed ones). Only the ports REGISTRIES gives
 * a registry are reached; any other gets one answer, whatever that port's state, and nothing is
 * dialled. Fixture servers on 127.0.0.2, as no real program plays "a registry and, next to it, a
 * service that counts connections": the registry at its configured port, and an open port beside it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestCa } from '../../bench/test-ca.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { listenWithLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const REGISTRY = 'port-scan.test';
const ADDRESS = '127.0.0.2';

let dir: string;
let registry: Server;
let registryPort: number;
let openService: TcpServer;
let openPort: number;
let closedPort: number;
let connectionsToOpenService = 0;
let dns: Dnsmasq;
let layover: RunningLayover;

const listen = (server: Server | TcpServer): Promise<number> => new Promise((resolve) => server.listen(0, ADDRESS, () => resolve((server.address() as AddressInfo).port)));
const close = (server: Server | TcpServer | undefined): Promise<void> => new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-port-scan-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('registry', [REGISTRY]);
  registry = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
  });
  registryPort = await listenWithLoopbackTwin(registry, ADDRESS);
  openService = createTcpServer((socket) => {
    connectionsToOpenService++;
    socket.destroy();
  });
  openPort = await listen(openService);
  // A port that was free a moment ago: closed, as far as anyone can tell.
  const probe = createTcpServer();
  closedPort = await listen(probe);
  await close(probe);
  dns = await startDnsmasq({ hostRecords: { [REGISTRY]: [ADDRESS] } });
  layover = await startLayover({ registries: `${REGISTRY}:${registryPort}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': ca.certFile, dns: 'off' });
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await Promise.all([close(registry), close(openService), dns?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** GET /v2/ on Layover's listener for the registry's port, with `host` as the Host header. */
function get(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: layover.addresses.registryPorts[0]!.port, servername: REGISTRY, ca: layover.app.ca.certPem, path: '/v2/library/app/manifests/latest', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('(control) reaches the registry at the port REGISTRIES gives it', async () => {
  expect((await get(`${REGISTRY}:${registryPort}`)).status).toBe(200);
});

it('answers any other port the same, open or closed, and dials none of them', async () => {
  const open = await get(`${REGISTRY}:${openPort}`);
  const closed = await get(`${REGISTRY}:${closedPort}`);
  const unported = await get(REGISTRY);
  for (const answer of [open, closed, unported]) {
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body).errors[0].code).toBe('NAME_UNKNOWN');
  }
  expect(open.body.replace(String(openPort), 'PORT')).toBe(closed.body.replace(String(closedPort), 'PORT'));
  expect(connectionsToOpenService).toBe(0);
});
