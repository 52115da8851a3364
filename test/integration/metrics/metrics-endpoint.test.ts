import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { parseExposition, seriesKeys, total } from '../../unit/metrics/exposition.js';

// In-process Layover on loopback; its upstream resolver is a closed port, so nothing here leaves the host.
async function start(flags: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}): Promise<RunningLayover> {
  const layover = await startLayover({ registries: 'registry.test', ...flags }, env);
  onTestFinished(async () => {
    await layover.close();
    rmSync(layover.dataDir, { recursive: true, force: true });
  });
  return layover;
}

/** A configuration file with client authentication by token, removed after the test. */
function clientAuthConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'layover-metrics-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'layover.yaml');
  writeFileSync(file, ['registries: [registry.test]', 'clientAuth: tokens', 'clientTokens:', `  - {user: ci, token: ci-token-${randomBytes(8).toString('hex')}}`].join('\n'));
  return file;
}

const get = (port: number, path: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${port}${path}`, { headers });

async function scrape(layover: RunningLayover) {
  const res = await get(layover.addresses.http!.port, '/metrics');
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

const adminToken = (layover: RunningLayover): string => readFileSync(layover.app.config.admin.tokenFile, 'utf8').trim();

describe('/metrics', () => {
  it('is served on the HTTP listener in the Prometheus text format, every sample line well formed', async () => {
    const layover = await start();
    const res = await get(layover.addresses.http!.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parseExposition(await res.text());
    expect(total(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(samples.some((s) => s.name === 'layover_open_connections' && s.labels.listener === 'http')).toBe(true);
  });

  it('with ADMIN_LISTEN is on that listener and not on the HTTP listener', async () => {
    const layover = await start({}, { ADMIN_LISTEN: '127.0.0.1:0' });
    const admin = layover.addresses.admin!;
    expect(admin.port).not.toBe(layover.addresses.http!.port);
    const there = await get(admin.port, '/metrics');
    expect(there.status).toBe(200);
    expect(parseExposition(await there.text()).some((s) => s.name === 'layover_requests_total' || s.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect((await get(layover.addresses.http!.port, '/metrics')).status).toBe(404);
  });

  it('with CLIENT_AUTH on needs admin credentials: 401 without, 401 with a wrong token, 200 with the admin token', async () => {
    const layover = await start({ config: clientAuthConfig() });
    const port = layover.addresses.http!.port;
    const without = await get(port, '/metrics');
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toMatch(/^Bearer realm="layover-admin"/);
    expect(await without.text()).not.toMatch(/layover_requests_total/);
    expect((await get(port, '/metrics', { authorization: 'Bearer not-the-admin-token-at-all' })).status).toBe(401);
    const withToken = await get(port, '/metrics', { authorization: `Bearer ${adminToken(layover)}` });
    expect(withToken.status).toBe(200);
    // The refused scrapes themselves count as denied requests to the metrics route.
    const samples = parseExposition(await withToken.text());
    expect(total(samples, 'layover_requests_total', { route: 'metrics', cache: 'denied', status: '4xx' })).toBe(2);
  });

  it('counts a request refused by client authentication as denied, under its registry', async () => {
    const layover = await start({ config: clientAuthConfig() });
    const refused = await layover.app.https.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { host: 'registry.test' } });
    expect(refused.statusCode).toBe(401);
    const res = await get(layover.addresses.http!.port, '/metrics', { authorization: `Bearer ${adminToken(layover)}` });
    const samples = parseExposition(await res.text());
    expect(total(samples, 'layover_requests_total', { route: 'manifest', registry: 'registry.test', cache: 'denied', status: '4xx' })).toBe(1);
    expect(total(samples, 'layover_served_bytes_total')).toBe(0);
  });

  it('hostile Hosts and paths create no series of their own: 50 random ones add only a bounded set', async () => {
    const layover = await start();
    // Warm up: every route and result this test can produce once, so that what follows adds nothing new.
    await layover.app.https.inject({ method: 'GET', url: '/v2/x/manifests/latest', headers: { host: 'bogus.example' } });
    const before = seriesKeys(await scrape(layover));
    for (let i = 0; i < 50; i++) {
      const word = randomBytes(6).toString('hex');
      const requests = [
        { host: `${word}.example`, url: `/v2/${word}/manifests/latest` },
        { host: `${word}.example`, url: `/${word}?x=${word}` },
        { host: 'docker.proxy', url: `/v2/${word}.example/${word}/blobs/sha256:${'a'.repeat(64)}` },
        { host: 'docker.proxy', url: `/v2/${word}/tags/list?ns=${word}.example` },
        { host: `registry.test`, url: `/${word}/${word}` },
      ];
      for (const { host, url } of requests) await layover.app.https.inject({ method: 'GET', url, headers: { host } });
      await layover.app.http!.inject({ method: 'GET', url: `/${word}`, headers: { host: `${word}.example` } });
    }
    const after = await scrape(layover);
    const added = [...seriesKeys(after)].filter((key) => !before.has(key) && key.startsWith('layover_'));
    // A few new combinations of the fixed labels at most (route x cache x status class), never one per request.
    expect(added.length).toBeLessThanOrEqual(12);
    const text = JSON.stringify(after.filter((s) => s.name.startsWith('layover_')).map((s) => s.labels));
    expect(text).not.toMatch(/[0-9a-f]{12}/);
    expect(total(after, 'layover_requests_total')).toBeGreaterThanOrEqual(300);
  });

  it('registries a wildcard of REGISTRIES matches are one series under the wildcard, not one per name a client makes up', async () => {
    const layover = await start({ registries: 'registry.test *.wild.test' });
    for (let i = 0; i < 100; i++) {
      const host = `${randomBytes(6).toString('hex')}.wild.test`;
      // Past routing (an intercepted name), the upstream cannot be resolved: 503, counted as a DNS failure.
      const res = await layover.app.https.inject({ method: 'GET', url: '/v2/app/manifests/latest', headers: { host } });
      expect(res.statusCode).toBe(503);
    }
    const samples = await scrape(layover);
    const registries = new Set(samples.filter((s) => s.name.startsWith('layover_') && s.labels.registry).map((s) => s.labels.registry));
    expect([...registries]).toEqual(['*.wild.test']);
    expect(total(samples, 'layover_requests_total', { route: 'manifest', registry: '*.wild.test', status: '5xx' })).toBe(100);
    expect(total(samples, 'layover_upstream_errors_total', { registry: '*.wild.test', cause: 'dns' })).toBe(100);
  });
});
