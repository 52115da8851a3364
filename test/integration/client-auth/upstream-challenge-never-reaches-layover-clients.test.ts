import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDnsmasq, type Dnsmasq } from '../../helpers/dnsmasq.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';
import { startHostileUpstream, UPSTREAM_HOST, type HostileUpstream } from '../hardening/hostile-upstream.js';

// A client Layover authenticated holds Layover's credentials. When the upstream refuses Layover
// (here: it wants Basic credentials Layover does not have), the client must get the refusal without
// the upstream's challenge, or it would present its Layover password at the upstream's realm.
const CI_TOKEN = 'ci-token-upstream-challenge-0123';

let upstream: HostileUpstream;
let dns: Dnsmasq;
let layover: RunningLayover;
let dir: string;
beforeAll(async () => {
  upstream = await startHostileUpstream();
  dns = await startDnsmasq({ hostRecords: { [UPSTREAM_HOST]: ['127.0.0.2'] } });
  dir = mkdtempSync(join(tmpdir(), 'layover-upstream-challenge-'));
  const config = join(dir, 'layover.yaml');
  writeFileSync(config, `clientAuth: tokens\nclientTokens:\n  - {user: ci, token: ${CI_TOKEN}}\n`);
  layover = await startLayover({
    config,
    'data-dir': join(dir, 'data'),
    registries: `${UPSTREAM_HOST}:${upstream.port}`,
    'upstream-dns': `${dns.host}:${dns.port}`,
    'upstream-ca': upstream.ca.certFile,
  });
}, 60_000);
afterAll(async () => {
  await layover?.close();
  await dns?.stop();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, authorization?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { host: `${UPSTREAM_HOST}:${upstream.port}`, ...(authorization ? { authorization } : {}) };
    const req = httpsRequest({ host: '127.0.0.1', port: upstream.port, servername: UPSTREAM_HOST, ca: layover.app.ca.certPem, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

it('refuses without the upstream challenge a client that Layover authenticated', async () => {
  const before = upstream.seen.length;
  const refused = await get(`/v2/library/app/manifests/${upstream.manifest.digest}`, `Bearer ${CI_TOKEN}`);
  expect(upstream.seen.length).toBeGreaterThan(before); // it did reach the upstream, which refused
  expect(refused.status).toBe(401);
  expect(JSON.parse(refused.body)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
  expect(refused.headers['www-authenticate']).toBeUndefined();
  // Without credentials the client gets Layover's own challenge, never the upstream's.
  expect((await get('/v2/library/app/manifests/good')).headers['www-authenticate']).toBe('Basic realm="Layover"');
});
