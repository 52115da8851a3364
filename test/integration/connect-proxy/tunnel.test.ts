/**
 * Tunnels of the ConnectProxy on their own: a plain node:http server as the proxy listener, the real
 * upstream resolver against dnsmasq on loopback, and as targets a TLS server with a certificate from
 * the openssl test CA and a TCP echo server (a fixture: it plays any protocol a tunnel must relay
 * unread). The tunnel ports are the targets' random ports, which the app would never allow: the rules
 * are the test's own here. The app's wiring is test/integration/connect-proxy/proxy-listener.test.ts.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { StaticTokenAuthenticator } from '../../../src/client-auth/authenticators/static-tokens.js';
import { Secret } from '../../../src/config/secret.js';
import { ConnectProxy, type ConnectProxyOptions } from '../../../src/connect-proxy/connect-proxy.js';
import { ClientNetworks } from '../../../src/dns/client-networks.js';
import { AddressPolicy } from '../../../src/upstream/address-policy.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { RegistryPorts } from '../../../src/proxy/upstream-target.js';
import { UpstreamResolver } from '../../../src/upstream/upstream-resolver.js';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';
import { captureLogger, type LogLine } from '../../helpers/capture-logger.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { holdRefusingPort } from '../../helpers/refusing-port.js';
import { sendConnect, sendRaw } from './connect-client.js';

const run = promisify(execFile);

let dir: string;
let ca: TestCa;
let dns: Dnsmasq;
let tlsTarget: ReturnType<typeof createHttpsServer>;
let echo: NetServer;
const tlsPort = (): number => (tlsTarget.address() as AddressInfo).port;
const echoPort = (): number => (echo.address() as AddressInfo).port;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-tunnel-'));
  ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('target', ['target.test']);
  tlsTarget = createHttpsServer({ key: readFileSync(leaf.keyFile), cert: readFileSync(leaf.certFile) }, (req, res) => res.end(`target says hello to ${req.headers.host}\n`));
  tlsTarget.listen(0, '127.0.0.1');
  await once(tlsTarget, 'listening');
  echo = createNetServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  dns = await startDnsmasq({ hostRecords: { 'target.test': ['127.0.0.1'], 'elsewhere.test': ['10.9.8.7'] }, nxdomains: ['missing.test'] });
});
afterAll(async () => {
  tlsTarget?.closeAllConnections();
  await Promise.all([new Promise((resolve) => tlsTarget?.close(resolve)), new Promise((resolve) => echo?.close(resolve)), dns?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  proxy: ConnectProxy;
  server: HttpServer;
  port: number;
  logs: LogLine[];
}

/** A ConnectProxy on a loopback listener that intercepts nothing and tunnels to the targets' ports. */
async function startProxy(overrides: Partial<ConnectProxyOptions> = {}, allowNetworks = ['127.0.0.1']): Promise<Running> {
  const { logger, lines } = captureLogger();
  const proxy = new ConnectProxy({
    logger,
    rules: { intercepted: new HostnameSet([]), servedPorts: new RegistryPorts([]), ports: new Set([tlsPort(), echoPort()]), policy: 'tunnel' },
    // Never used: nothing is intercepted here.
    tlsServer: createHttpsServer(),
    tls: { key: '', cert: '', SNICallback: (_name, cb) => cb(new Error('not intercepting')) },
    dial: { resolver: new UpstreamResolver({ servers: [{ host: dns.host, port: dns.port }] }), addressPolicy: new AddressPolicy(allowNetworks), connectTimeoutMs: 2000 },
    authenticator: null,
    tunnelClients: null,
    timeouts: { handshakeMs: 2000, idleMs: 10_000 },
    ...overrides,
  } as ConnectProxyOptions);
  const server = createHttpServer({ connectionsCheckingInterval: 100 });
  proxy.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    await proxy.close(0);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { proxy, server, port: (server.address() as AddressInfo).port, logs: lines };
}

const connectLine = async (logs: LogLine[]): Promise<LogLine> => {
  for (let i = 0; i < 100; i++) {
    const line = logs.find((l) => l.msg === 'connect');
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no connect line: ${JSON.stringify(logs)}`);
};

describe('tunnels', () => {
  it('relay TLS byte for byte: the client sees the target\'s own certificate, and one line is logged', async () => {
    const { port, logs } = await startProxy();
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-x', `http://127.0.0.1:${port}`, '--cacert', ca.certFile, `https://target.test:${tlsPort()}/`]);
    expect(stdout).toBe(`target says hello to target.test:${tlsPort()}\n`);
    const line = await connectLine(logs);
    expect(line).toMatchObject({ target: `target.test:${tlsPort()}`, decision: 'tunnel', status: 200, client: '127.0.0.1', ms: expect.any(Number) });
    expect(line.bytesUp).toBeGreaterThan(100);
    expect(line.bytesDown).toBeGreaterThan(100);
  });

  it('keep bytes sent right behind the CONNECT head, and carry a half-close through', async () => {
    const { port, logs } = await startProxy();
    const answer = await sendRaw(port, `CONNECT target.test:${echoPort()} HTTP/1.1\r\nHost: target.test:${echoPort()}\r\n\r\nfirst bytes;`);
    expect(answer.status).toBe(200);
    const received: Buffer[] = [answer.rest];
    answer.socket.on('data', (chunk: Buffer) => received.push(chunk));
    answer.socket.resume();
    answer.socket.end('after the answer');
    await once(answer.socket, 'end');
    expect(Buffer.concat(received).toString()).toBe('first bytes;after the answer');
    expect(await connectLine(logs)).toMatchObject({ bytesUp: 28, bytesDown: 28 });
  });

  it('outlive the proxy listener\'s header timeout', async () => {
    const { port, server } = await startProxy();
    server.headersTimeout = 300;
    server.requestTimeout = 400;
    const answer = await sendConnect(port, `target.test:${echoPort()}`);
    expect(answer.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 900));
    answer.socket.write('still there?');
    const data = once(answer.socket, 'data');
    answer.socket.resume();
    const [echoed] = (await data) as [Buffer];
    expect(echoed.toString()).toBe('still there?');
    answer.socket.destroy();
  });

  it('close after the idle timeout', async () => {
    const { port } = await startProxy({ timeouts: { handshakeMs: 2000, idleMs: 300 } });
    const answer = await sendConnect(port, `target.test:${echoPort()}`);
    const started = Date.now();
    answer.socket.resume();
    await once(answer.socket, 'close');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('end when the proxy closes', async () => {
    const { port, proxy } = await startProxy();
    const answer = await sendConnect(port, `target.test:${echoPort()}`);
    answer.socket.resume();
    const closed = once(answer.socket, 'close');
    await proxy.close(0);
    await closed;
  });
});

describe('refused tunnels', () => {
  it('a target the address policy forbids: 403 naming the kind of address', async () => {
    const { port } = await startProxy({}, []);
    const answer = await sendConnect(port, `target.test:${tlsPort()}`);
    expect(answer.status).toBe(403);
    expect(answer.body).toMatch(/loopback address/);
  });

  it('a name the resolver does not know: 502; a port nobody listens on: 502', async () => {
    const { port, logs } = await startProxy();
    const missing = await sendConnect(port, `missing.test:${tlsPort()}`);
    expect(missing.status).toBe(502);
    expect((await connectLine(logs)).reason).toBe('dns');
    const closed = await holdRefusingPort();
    onTestFinished(closed.release);
    const closedPort = closed.port;
    const { port: port2 } = await startProxy({ rules: { intercepted: new HostnameSet([]), servedPorts: new RegistryPorts([]), ports: new Set([closedPort]), policy: 'tunnel' } });
    const refused = await sendConnect(port2, `target.test:${closedPort}`);
    expect(refused.status).toBe(502);
  });

  it('from a client outside CONNECT_ALLOW_NETWORKS: 403; from one inside: tunnelled', async () => {
    const { port, logs } = await startProxy({ tunnelClients: new ClientNetworks(['127.0.0.3/32']) });
    const stranger = await sendConnect(port, `target.test:${echoPort()}`, {}, '127.0.0.2');
    expect(stranger.status).toBe(403);
    expect(stranger.body).toMatch(/CONNECT_ALLOW_NETWORKS/);
    expect(await connectLine(logs)).toMatchObject({ client: '127.0.0.2', decision: 'tunnel', status: 403, reason: 'stranger' });
    const local = await sendConnect(port, `target.test:${echoPort()}`, {}, '127.0.0.3');
    expect(local.status).toBe(200);
    local.socket.destroy();
  });

  it('without Proxy-Authorization when an authenticator is set: 407 with a Basic challenge; with it: tunnelled', async () => {
    const authenticator = new StaticTokenAuthenticator([{ user: 'ci', token: new Secret('tunnel-token-1234'), groups: [] }]);
    const { port, logs } = await startProxy({ authenticator });
    const none = await sendConnect(port, `target.test:${echoPort()}`);
    expect(none.status).toBe(407);
    expect(none.head).toMatch(/^Proxy-Authenticate: Basic realm="Layover"$/im);
    const bearer = await sendConnect(port, `target.test:${echoPort()}`, { 'Proxy-Authorization': 'Bearer tunnel-token-1234' });
    expect(bearer.status).toBe(200);
    bearer.socket.destroy();
    const basic = await sendConnect(port, `target.test:${echoPort()}`, { 'Proxy-Authorization': `Basic ${Buffer.from('ci:tunnel-token-1234').toString('base64')}` });
    expect(basic.status).toBe(200);
    basic.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(logs.filter((l) => l.msg === 'connect' && l.user === 'ci')).toHaveLength(2);
    expect(JSON.stringify(logs)).not.toContain('tunnel-token-1234');
  });
});
