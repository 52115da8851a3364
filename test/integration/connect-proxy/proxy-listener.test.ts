/**
 * The proxy listener of the whole app (buildApp on loopback, port 0): CONNECT to an intercepted name
 * ends at Layover's TLS listener and takes its routes; the authority, SNI and Host must agree; other
 * hosts are tunnelled only where the policies allow, or refused; plain GETs get /ca.crt, /healthz and
 * /setup/*. curl is the client where it can be; connect-client.ts where curl will not misbehave.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { getOver, sendConnect, sendRaw, startTls } from './connect-client.js';

const run = promisify(execFile);

const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});
async function start(...args: Parameters<typeof startLayover>): Promise<RunningLayover> {
  const layover = await startLayover(...args);
  running.push(layover);
  return layover;
}

/** curl through the proxy, trusting Layover's CA only; never resolves the target itself. */
async function curlVia(layover: RunningLayover, url: string, extra: string[] = []): Promise<{ status: number; body: string; stderr: string }> {
  const caFile = join(layover.dataDir, 'ca', 'ca.crt');
  const args = ['-sS', '--max-time', '10', '-x', `http://127.0.0.1:${layover.addresses.proxy!.port}`, '--cacert', caFile, '-w', '\n%{http_code}', ...extra, url];
  const result = await run('curl', args).catch((error: { stdout: string; stderr: string }) => error);
  const lines = result.stdout.split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n'), stderr: result.stderr };
}

const connectLines = (layover: RunningLayover) => layover.logs.filter((line) => line.msg === 'connect');
const waitForConnectLine = async (layover: RunningLayover, count = 1): Promise<void> => {
  for (let i = 0; i < 100 && connectLines(layover).length < count; i++) await new Promise((resolve) => setTimeout(resolve, 20));
};

describe('CONNECT to an intercepted name', () => {
  it('ends TLS at Layover with the name\'s certificate and serves the routes of port 443', async () => {
    const layover = await start();
    const answer = await curlVia(layover, 'https://docker.proxy/ca.crt');
    expect(answer.stderr).toBe('');
    expect(answer.status).toBe(200);
    expect(answer.body.trim()).toBe(layover.app.ca.certPem.trim());
    await waitForConnectLine(layover);
    expect(connectLines(layover)[0]).toMatchObject({ target: 'docker.proxy:443', decision: 'intercept', status: 200, sni: 'docker.proxy', ms: expect.any(Number) });
    expect(connectLines(layover)[0]!.bytesDown).toBeGreaterThan(layover.app.ca.certPem.length);
    // The request inside is logged like any on port 443.
    expect(layover.logs.find((l) => l.msg === 'request' && l.url === '/ca.crt')).toMatchObject({ host: 'docker.proxy', status: 200 });
  });

  it('serves docker.proxy at a registry port (its storage redirects lead there), and tunnels that registry at other ports', async () => {
    const layover = await start({ registries: 'registry.test:5057' });
    const answer = await curlVia(layover, 'https://docker.proxy:5057/ca.crt');
    expect(answer.stderr).toBe('');
    expect(answer.status).toBe(200);
    // The registry's name at 443 is another server of that host (a token realm): tunnelled, not answered by Layover.
    await curlVia(layover, 'https://registry.test/v2/');
    await waitForConnectLine(layover, 2);
    expect(connectLines(layover).map((l) => [l.target, l.decision])).toEqual([
      ['docker.proxy:5057', 'intercept'],
      ['registry.test:443', 'tunnel'],
    ]);
  });

  it('works when the TLS listener is the HTTP/2 one (LAYOVER_HTTP2=true): HTTP/1.1 inside the tunnel', async () => {
    const layover = await start({ http2: true });
    const answer = await curlVia(layover, 'https://docker.proxy/healthz', ['--http2']);
    expect(answer.stderr).toBe('');
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ status: 'ok' });
  });

  it('keeps the bytes a client sends right behind the CONNECT head (its ClientHello)', async () => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    // A TLS client whose first flight is captured and sent in the same write as the CONNECT head.
    const { duplexPair } = await import('node:stream');
    const [ours, theirs] = duplexPair();
    const { connect } = await import('node:tls');
    const tls = connect({ socket: ours as never, servername: 'docker.proxy', ca: layover.app.ca.certPem });
    const hello = await new Promise<Buffer>((resolve) => theirs.once('data', resolve));
    const secure = new Promise((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
    const answer = await sendRaw(port, Buffer.concat([Buffer.from('CONNECT docker.proxy:443 HTTP/1.1\r\nHost: docker.proxy:443\r\n\r\n'), hello]));
    expect(answer.status).toBe(200);
    // The pair may hand the server's flight to the client synchronously: listen first, then plumb.
    theirs.pipe(answer.socket);
    if (answer.rest.length > 0) theirs.write(answer.rest);
    answer.socket.pipe(theirs);
    answer.socket.resume();
    await secure;
    const response = await getOver(tls as never, '/healthz', 'docker.proxy');
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ status: 'ok' });
  });

  it('picks AES-128-GCM inside an intercepted tunnel, as on 443, for a client that offers AES-256-GCM first', async () => {
    const layover = await start();
    const answer = await sendConnect(layover.addresses.proxy!.port, 'docker.proxy:443');
    expect(answer.status).toBe(200);
    // Node's own client order: AES-256-GCM first.
    const tls = await startTls(answer.socket, 'docker.proxy', layover.app.ca.certPem);
    expect(tls.getCipher().standardName).toBe('TLS_AES_128_GCM_SHA256');
    tls.destroy();
  });

  it('refuses a Host other than the CONNECT authority with 421, even for another intercepted name', async () => {
    const layover = await start();
    const answer = await curlVia(layover, 'https://docker.proxy/ca.crt', ['-H', 'Host: registry-1.docker.io']);
    expect(answer.status).toBe(421);
    expect(JSON.parse(answer.body).errors[0].code).toBe('DENIED');
    const port = await curlVia(layover, 'https://docker.proxy/ca.crt', ['-H', 'Host: docker.proxy:8443']);
    expect(port.status).toBe(421);
    expect(layover.logs.find((l) => l.msg === 'request' && l.status === 421)).toMatchObject({ refused: 'connect-authority-mismatch' });
  });

  it('fails the handshake when SNI names another host than the CONNECT', async () => {
    const layover = await start();
    const answer = await sendConnect(layover.addresses.proxy!.port, 'docker.proxy:443');
    expect(answer.status).toBe(200);
    await expect(startTls(answer.socket, 'registry-1.docker.io', layover.app.ca.certPem)).rejects.toThrow();
    answer.socket.destroy();
    await waitForConnectLine(layover);
    expect(connectLines(layover)[0]).toMatchObject({ decision: 'intercept', reason: 'sni-mismatch', sni: 'registry-1.docker.io' });
    // Counted with the handshakes that fail on 443, as /metrics shows them.
    const handshakes = (await layover.app.metrics.tlsHandshakes.get()).values;
    expect(handshakes.find((v) => v.labels.result === 'failed')?.value).toBe(1);
  });

  it('intercepts without proxy credentials when CLIENT_AUTH is on: requests inside are authenticated as on 443', async () => {
    const htpasswd = join(execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim(), 'htpasswd');
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', '-C', '5', 'carol', 'secret-pw'], { encoding: 'utf8' }));
    const layover = await start({}, { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd });
    const anonymous = await curlVia(layover, 'https://registry-1.docker.io/v2/');
    expect(anonymous.status).toBe(401);
    const carol = await curlVia(layover, 'https://registry-1.docker.io/v2/', ['-u', 'carol:secret-pw']);
    expect(carol.status).toBe(200);

    // A tunnel needs Proxy-Authorization; the check passes, then the address policy refuses loopback.
    const port = layover.addresses.proxy!.port;
    const noCreds = await sendConnect(port, '127.0.0.1:443');
    expect(noCreds.status).toBe(407);
    expect(noCreds.head).toMatch(/^Proxy-Authenticate: Basic realm="Layover"$/im);
    const wrong = await sendConnect(port, '127.0.0.1:443', { 'Proxy-Authorization': `Basic ${Buffer.from('carol:nope').toString('base64')}` });
    expect(wrong.status).toBe(407);
    const right = await sendConnect(port, '127.0.0.1:443', { 'Proxy-Authorization': `Basic ${Buffer.from('carol:secret-pw').toString('base64')}` });
    expect(right.status).toBe(403);
    expect(right.body).toMatch(/loopback/);
    await waitForConnectLine(layover, 5);
    expect(connectLines(layover).map((l) => l.reason)).toEqual(expect.arrayContaining(['auth-missing', 'auth-rejected', 'address']));
    expect(connectLines(layover).find((l) => l.reason === 'address')).toMatchObject({ user: 'carol', decision: 'tunnel', status: 403 });
    expect(JSON.stringify(layover.logs)).not.toContain('secret-pw');
    expect(JSON.stringify(layover.logs)).not.toContain(Buffer.from('carol:secret-pw').toString('base64'));
  });
});

describe('CONNECT to any other host', () => {
  it('refuses loopback, private and link-local targets in tunnel mode (address policy)', async () => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    for (const [authority, kind] of [
      ['127.0.0.1:443', 'loopback'],
      ['[::1]:443', 'loopback'],
      ['10.1.2.3:443', 'private'],
      ['169.254.169.254:443', 'link-local'],
      ['[::ffff:127.0.0.1]:443', 'loopback'],
    ] as const) {
      const answer = await sendConnect(port, authority);
      expect(answer.status, authority).toBe(403);
      expect(answer.body, authority).toContain(kind);
    }
  });

  it('tunnels only to port 443 and the ports of configured registries', async () => {
    const layover = await start();
    const answer = await sendConnect(layover.addresses.proxy!.port, 'example.test:25');
    expect(answer.status).toBe(403);
    expect(answer.body).toMatch(/port 25/);
  });

  it('is refused with 403 and a short text with CONNECT_POLICY=deny', async () => {
    const layover = await start({ 'connect-policy': 'deny' });
    const answer = await sendConnect(layover.addresses.proxy!.port, 'example.test:443');
    expect(answer.status).toBe(403);
    expect(answer.head).toMatch(/^Content-Type: text\/plain/im);
    expect(answer.body).toMatch(/CONNECT_POLICY=deny/);
    await waitForConnectLine(layover);
    expect(connectLines(layover)[0]).toMatchObject({ target: 'example.test:443', decision: 'deny', reason: 'policy', status: 403 });
    // Intercepted names still work.
    expect((await curlVia(layover, 'https://docker.proxy/healthz')).status).toBe(200);
  });

  it('answers malformed CONNECTs with 400 and oversize heads with 431, and closes', async () => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    for (const authority of ['example.test', 'http://example.test/', 'a..b:443', 'example.test:0', 'example.test:70000', `${'a'.repeat(300)}:443`, 'user@host:443', '1.2.3:443', '[fe80::1%25eth0]:443', 'http://user:url-secret-pw@example.test:443', 'a/b:c@d:pw-after-slash@example.test:443']) {
      const answer = await sendConnect(port, authority);
      expect(answer.status, authority).toBe(400);
    }
    // The log line names what was asked, never a password in it, wherever the user info sits.
    await waitForConnectLine(layover);
    expect(JSON.stringify(layover.logs)).not.toMatch(/url-secret-pw|pw-after-slash/);
    expect((await sendRaw(port, 'CONNECT\r\n\r\n')).status).toBe(400);
    expect((await sendRaw(port, `CONNECT example.test:443 HTTP/1.1\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`)).status).toBe(431);
  });
});

describe('plain HTTP on the proxy port', () => {
  it('serves /ca.crt, /healthz and the setup scripts with the proxy address the node used', async () => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    const base = `http://127.0.0.1:${port}`;
    expect(await (await fetch(`${base}/ca.crt`)).text()).toBe(layover.app.ca.certPem);
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const systemd = await fetch(`${base}/setup/systemd`);
    expect(systemd.headers.get('content-type')).toMatch(/^text\/x-shellscript/);
    expect(await systemd.text()).toContain(`proxy_url='http://127.0.0.1:${port}'`);
    const hosts = await (await fetch(`${base}/setup/hosts`)).text();
    expect(hosts).toContain('127.0.0.1 registry-1.docker.io');
    expect((await fetch(`${base}/setup/nonsense`)).status).toBe(404);
  });

  it('serves the scripts on the HTTP port and on 443 as docker.proxy too, naming the proxy port', async () => {
    const layover = await start();
    const proxyPort = layover.addresses.proxy!.port;
    const plain = await (await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/setup/containerd`)).text();
    expect(plain).toContain(`proxy_url='http://127.0.0.1:${proxyPort}'`);
    expect(plain).toContain('configure_unit containerd.service');
    const tls = await curlVia(layover, 'https://docker.proxy/setup/podman');
    expect(tls.status).toBe(200);
    expect(tls.body).toContain(`proxy_url='http://docker.proxy:${proxyPort}'`);
  });

  it('answers /setup/systemd with 404 when the proxy is off, /setup/hosts still', async () => {
    const layover = await start({ proxy: 'off' });
    expect(layover.addresses.proxy).toBeNull();
    const base = `http://127.0.0.1:${layover.addresses.http!.port}`;
    expect((await fetch(`${base}/setup/systemd`)).status).toBe(404);
    expect((await fetch(`${base}/setup/hosts`)).status).toBe(200);
  });
});

describe('closing', () => {
  it('closes promptly with a CONNECT waiting for its handshake and an intercepted keep-alive connection open', async () => {
    const layover = await start();
    const port = layover.addresses.proxy!.port;
    const intercepted = await sendConnect(port, 'docker.proxy:443');
    const tls = await startTls(intercepted.socket, 'docker.proxy', layover.app.ca.certPem);
    tls.write('GET /healthz HTTP/1.1\r\nHost: docker.proxy\r\n\r\n');
    await new Promise((resolve) => tls.once('data', resolve));
    const idle = await sendRaw(port, 'CONNECT docker.proxy:443 HTTP/1.1\r\n\r\n');
    const started = Date.now();
    await layover.close();
    running.splice(running.indexOf(layover), 1);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(tls.destroyed || tls.readableEnded).toBe(true);
    idle.socket.destroy();
  });
});
