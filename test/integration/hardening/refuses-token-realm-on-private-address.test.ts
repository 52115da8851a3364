/**
 * Issue 10, item 1: a token realm is the upstream's to choose, like a redirect's Location. A
 * hostile registry that answers `/v2/` with `Bearer realm="<an internal URL>"` must not make
 * Layover fetch that URL, neither for its own tokens nor through the relay `/_layover/token`
 * (which would hand the internal service's answer to the client).
 *
 * Fixture servers, as no real program misbehaves like this on demand: the hostile registry on
 * 127.0.0.2, whose challenge each test sets, and the "internal" service on 127.0.0.9 (plain HTTP
 * and HTTPS) that records what reaches it. Layover, its upstream resolver (dnsmasq) and TLS are real.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';
import { LEVEL } from '../../helpers/capture-logger.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { listenWithLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const REGISTRY = 'realm-trap.test';
const REGISTRY_ADDRESS = '127.0.0.2';
const INTERNAL_ADDRESS = '127.0.0.9';
/** A name of the hostile registry's own choosing that resolves to the internal address (rebinding). */
const REBOUND = 'auth.rebound.test';
const CLIENT_BASIC = `Basic ${Buffer.from('someone:anything').toString('base64')}`;

let dir: string;
let ca: TestCa;
let dns: Dnsmasq;
let registry: HttpsServer;
let registryPort: number;
let internalHttp: HttpServer;
let internalHttps: HttpsServer;
/** What reached the internal service. */
const internalSeen: string[] = [];
/** The challenge the hostile registry answers `/v2/` with. */
let challenge = '';
let layover: RunningLayover | undefined;

const listen = (server: HttpServer | HttpsServer, address: string): Promise<number> =>
  new Promise((resolve) => server.listen(0, address, () => resolve((server.address() as AddressInfo).port)));
const close = (server: HttpServer | HttpsServer | undefined): Promise<void> => new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-realm-trap-'));
  ca = await createTestCa(join(dir, 'ca'));
  const registryLeaf = await ca.issue('registry', [REGISTRY]);
  const internalLeaf = await ca.issue('internal', [REBOUND, INTERNAL_ADDRESS]);
  registry = createHttpsServer({ cert: readFileSync(registryLeaf.certFile), key: readFileSync(registryLeaf.keyFile) }, (req, res) => {
    req.resume();
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': challenge }).end('{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}');
  });
  const internal = (req: IncomingMessage, res: ServerResponse): void => {
    internalSeen.push(`${req.method} ${req.headers.host} ${req.url}`);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"internal-secret-payload"}');
  };
  internalHttp = createHttpServer(internal);
  internalHttps = createHttpsServer({ cert: readFileSync(internalLeaf.certFile), key: readFileSync(internalLeaf.keyFile) }, internal);
  registryPort = await listenWithLoopbackTwin(registry, REGISTRY_ADDRESS);
  await listen(internalHttp, INTERNAL_ADDRESS);
  await listen(internalHttps, INTERNAL_ADDRESS);
  dns = await startDnsmasq({ hostRecords: { [REGISTRY]: [REGISTRY_ADDRESS], [REBOUND]: [INTERNAL_ADDRESS] } });
}, 60_000);
afterEach(async () => {
  await layover?.close();
  if (layover) rmSync(layover.dataDir, { recursive: true, force: true });
  layover = undefined;
  internalSeen.length = 0;
});
afterAll(async () => {
  await Promise.all([close(registry), close(internalHttp), close(internalHttps), dns?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}): Promise<RunningLayover> {
  // Layover holds a credential for the registry: its own requests fetch tokens, and the relay is on.
  layover = await startLayover(
    { registries: `${REGISTRY}:${registryPort}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': ca.certFile, dns: 'off' },
    { AUTH_REGISTRIES: `${REGISTRY}:${registryPort}|layover|layover-upstream-pw`, AUTH_REGISTRY_DELIMITER: '|', ...env },
  );
  return layover;
}

/** One request to Layover's listener for the registry's port, as a client of that registry. */
function get(running: RunningLayover, path: string, authorization?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const port = running.addresses.registryPorts[0]!.port;
    const headers = { host: `${REGISTRY}:${registryPort}`, ...(authorization ? { authorization } : {}) };
    const req = httpsRequest({ host: '127.0.0.1', port, servername: REGISTRY, ca: running.app.ca.certPem, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const httpPort = (): number => (internalHttp.address() as AddressInfo).port;
const httpsPort = (): number => (internalHttps.address() as AddressInfo).port;
/** The realms a hostile registry may name, all leading to the internal service. */
const REALMS: Record<string, () => string> = {
  'plain http on a loopback address': () => `http://${INTERNAL_ADDRESS}:${httpPort()}/secret`,
  'https on a loopback address': () => `https://${INTERNAL_ADDRESS}:${httpsPort()}/secret`,
  'https on a name that resolves to loopback': () => `https://${REBOUND}:${httpsPort()}/secret`,
  'https on the registry\'s own address, another port': () => `https://${REGISTRY}:${httpsPort()}/secret`,
};

it.each(Object.keys(REALMS))('never fetches a realm given as %s, for the relay or its own tokens', async (kind) => {
  const running = await start();
  challenge = `Bearer realm="${REALMS[kind]!()}",service="${REGISTRY}"`;
  const relayed = await get(running, '/_layover/token?service=x&scope=repository:team/app:pull', CLIENT_BASIC);
  expect(relayed.status).toBe(502);
  expect(relayed.body).not.toContain('internal-secret-payload');
  expect(JSON.parse(relayed.body).errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('token realm') });
  const own = await get(running, '/v2/team/app/manifests/latest');
  expect(own.status).toBe(502);
  expect(JSON.parse(own.body).errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('token realm') });
  expect(internalSeen).toEqual([]);
});

it('logs one warning per refusal naming the registry and the realm host, never a credential', async () => {
  const running = await start();
  const realm = REALMS['https on a name that resolves to loopback']!();
  challenge = `Bearer realm="${realm}",service="${REGISTRY}"`;
  expect((await get(running, '/_layover/token?service=x', CLIENT_BASIC)).status).toBe(502);
  const warnings = running.logs.filter((line) => line.level === LEVEL.warn && String(line.msg).includes('token realm'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ registry: `${REGISTRY}:${registryPort}`, realm: new URL(realm).host });
  const everything = JSON.stringify(running.logs);
  expect(everything).not.toContain('layover-upstream-pw');
  expect(everything).not.toContain(CLIENT_BASIC.slice(6));
  expect(internalSeen).toEqual([]);
});

it('reaches the same realm once REDIRECT_ALLOW_NETWORKS lists its network', async () => {
  const running = await start({ REDIRECT_ALLOW_NETWORKS: `${INTERNAL_ADDRESS}/32` });
  challenge = `Bearer realm="${REALMS['https on a name that resolves to loopback']!()}",service="${REGISTRY}"`;
  const relayed = await get(running, '/_layover/token?service=x', CLIENT_BASIC);
  expect(relayed).toEqual({ status: 200, body: '{"token":"internal-secret-payload"}' });
  expect(internalSeen).toHaveLength(1);
});
