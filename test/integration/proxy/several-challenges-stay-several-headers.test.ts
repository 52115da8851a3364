/**
 * An upstream that offers two schemes answers with two WWW-Authenticate headers. Where Layover points
 * the Bearer realm at itself, both must reach the client as two headers again: Docker's parser reads
 * one challenge per header, and one joined header hid the second challenge from it. Fixture registry
 * (no real registry sends two schemes on demand) on 127.0.0.9; Layover, dnsmasq and TLS are real.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestCa } from '../../bench/test-ca.js';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { listenWithLoopbackTwin } from '../../helpers/loopback-twin-port.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const REGISTRY = 'two-schemes.test';
let dir: string;
let dns: Dnsmasq;
let registry: Server;
let port: number;
let layover: RunningLayover;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-two-challenges-'));
  const ca = await createTestCa(join(dir, 'ca'));
  const leaf = await ca.issue('registry', [REGISTRY]);
  registry = createServer({ cert: readFileSync(leaf.certFile), key: readFileSync(leaf.keyFile) }, (req, res) => {
    req.resume();
    res.writeHead(401, [
      ['content-type', 'application/json'],
      ['www-authenticate', 'Basic realm="two-schemes"'],
      ['www-authenticate', `Bearer realm="https://${REGISTRY}:${port}/token",service="${REGISTRY}"`],
    ]).end('{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}');
  });
  port = await listenWithLoopbackTwin(registry, '127.0.0.9');
  dns = await startDnsmasq({ hostRecords: { [REGISTRY]: ['127.0.0.9'] } });
  // Layover holds a credential for the registry: it points Bearer realms at its own token endpoint.
  layover = await startLayover(
    { registries: `${REGISTRY}:${port}`, 'upstream-dns': `${dns.host}:${dns.port}`, 'upstream-ca': ca.certFile, dns: 'off' },
    { AUTH_REGISTRIES: `${REGISTRY}:${port}|layover|layover-upstream-pw`, AUTH_REGISTRY_DELIMITER: '|' },
  );
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await new Promise<void>((resolve) => (registry ? registry.close(() => resolve()) : resolve()));
  await dns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The WWW-Authenticate headers of Layover's answer to GET `path`, one entry per header line. */
function challenges(path: string): Promise<{ status: number; values: string[] }> {
  return new Promise((resolve, reject) => {
    const listener = layover.addresses.registryPorts[0]!.port;
    const req = httpsRequest({ host: '127.0.0.1', port: listener, servername: REGISTRY, ca: layover.app.ca.certPem, path, headers: { host: `${REGISTRY}:${port}` }, agent: false }, (res) => {
      res.resume();
      const values: string[] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) if (res.rawHeaders[i]!.toLowerCase() === 'www-authenticate') values.push(res.rawHeaders[i + 1]!);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, values }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('passes the ping’s two challenges on as two headers, the Bearer realm pointing at Layover', async () => {
  const { status, values } = await challenges('/v2/');
  expect(status).toBe(401);
  expect(values).toEqual(['Basic realm="two-schemes"', `Bearer realm="https://${REGISTRY}:${port}/_layover/token",service="${REGISTRY}"`]);
});
