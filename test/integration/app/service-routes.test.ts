import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});
async function start(...args: Parameters<typeof startLayover>): Promise<RunningLayover> {
  const layover = await startLayover(...args);
  running.push(layover);
  return layover;
}

/** GET over TLS to 127.0.0.1 with `servername`, trusting only `ca`. */
function getTls(port: number, servername: string, path: string, ca: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername, path, ca, headers: { host: servername } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('service routes', () => {
  it('serves the CA at /ca.crt over plain HTTP and over TLS as docker.proxy', async () => {
    const layover = await start();
    const plain = await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/ca.crt`);
    expect(plain.status).toBe(200);
    const pem = await plain.text();
    expect(pem).toBe(layover.app.ca.certPem);
    expect(new X509Certificate(pem).ca).toBe(true);

    const tls = await getTls(layover.addresses.https.port, 'docker.proxy', '/ca.crt', pem);
    expect(tls.status).toBe(200);
    expect(tls.body).toBe(pem);
  });

  it('answers /healthz and gives unknown routes an OCI error', async () => {
    const layover = await start();
    const base = `http://127.0.0.1:${layover.addresses.http!.port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const missing = await fetch(`${base}/no/such/thing?token=abc`);
    expect(missing.status).toBe(404);
    const body = (await missing.json()) as { errors: { code: string }[] };
    expect(body.errors[0]!.code).toBe('NOT_FOUND');
  });

  it('logs one line per request, with the token in the query redacted', async () => {
    const layover = await start();
    await fetch(`http://127.0.0.1:${layover.addresses.http!.port}/healthz?token=s3cr3t`);
    await new Promise((r) => setTimeout(r, 50));
    const lines = layover.logs.filter((l) => l.msg === 'request');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ method: 'GET', status: 200, url: '/healthz?token=[redacted]' });
    expect(typeof lines[0]!.ms).toBe('number');
    expect(JSON.stringify(layover.logs)).not.toContain('s3cr3t');
  });

  it('keeps the CA across a restart (same fingerprint)', async () => {
    const first = await start();
    const fingerprint = first.app.ca.fingerprint256;
    await first.close();
    running.splice(running.indexOf(first), 1);
    const second = await start({ 'data-dir': first.dataDir });
    expect(second.app.ca.fingerprint256).toBe(fingerprint);
    expect(second.logs.some((l) => l.msg === 'loaded the CA')).toBe(true);
  });

  it('can switch the HTTP and DNS listeners off', async () => {
    const layover = await start({ http: 'off', dns: 'off' });
    expect(layover.addresses.http).toBeNull();
    expect(layover.addresses.dns).toBeNull();
  });
});
