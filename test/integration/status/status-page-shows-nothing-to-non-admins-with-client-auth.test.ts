import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover on loopback. The status page names what was pulled: with client authentication
// on, the page and its JSON answer only an admin (ADMIN_GROUP member or the admin token), on the
// HTTP listener and at https://docker.proxy/ alike.
const ADMIN_USER_TOKEN = 'ops-token-5a4b3c2d1e0f9a8b';
const PLAIN_USER_TOKEN = 'dev-token-0f1e2d3c4b5a6978';
const PRIVATE_REPOSITORY = 'team/secret-project';

const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function layoverWith(lines: string[]): Promise<{ layover: RunningLayover; adminToken: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-status-'));
  dirs.push(dir);
  const file = join(dir, 'layover.yaml');
  writeFileSync(file, ['registries: [registry.test]', ...lines].join('\n'));
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
  running.push(layover);
  // A pull the page would name (counted as the request log counts one).
  layover.app.metrics.recordRequest({ listener: 'https', route: 'manifest', registry: 'registry.test', repository: PRIVATE_REPOSITORY, cache: 'miss', status: 200, bytes: 512, error: undefined });
  return { layover, adminToken: readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim() };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** GET on the HTTP listener, or with `dockerProxy` at https://docker.proxy/ (SNI and Host), trusting Layover's CA. */
function get(layover: RunningLayover, path: string, authorization?: string, dockerProxy = false): Promise<Answer> {
  const headers = authorization ? { authorization } : {};
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = dockerProxy
      ? httpsRequest({ host: '127.0.0.1', port: layover.addresses.https.port, servername: 'docker.proxy', path, ca: layover.app.ca.certPem, headers: { ...headers, host: 'docker.proxy' } }, onResponse)
      : httpRequest({ host: '127.0.0.1', port: layover.addresses.http!.port, path, headers }, onResponse);
    req.on('error', reject);
    req.end();
  });
}

const TOKENS = ['clientAuth: tokens', 'clientTokens:', `  - {user: ops, token: ${ADMIN_USER_TOKEN}, groups: [layover-admins]}`, `  - {user: dev, token: ${PLAIN_USER_TOKEN}, groups: [developers]}`];

describe('the status page with client authentication on', () => {
  for (const [where, dockerProxy] of [['on the HTTP listener', false], ['at https://docker.proxy/', true]] as const) {
    it(`refuses a client without credentials (401) and a user outside ADMIN_GROUP (403) ${where}, naming nothing`, async () => {
      const { layover } = await layoverWith(TOKENS);
      for (const path of ['/', '/status.json']) {
        const anonymous = await get(layover, path, undefined, dockerProxy);
        expect(anonymous.status, path).toBe(401);
        expect(anonymous.headers['www-authenticate']).toContain('Basic');
        expect(JSON.parse(anonymous.body)).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
        const wrong = await get(layover, path, 'Bearer not-a-token-of-anyone-at-all', dockerProxy);
        expect(wrong.status, path).toBe(401);
        const developer = await get(layover, path, `Bearer ${PLAIN_USER_TOKEN}`, dockerProxy);
        expect(developer.status, path).toBe(403);
        expect(JSON.parse(developer.body)).toMatchObject({ errors: [{ code: 'DENIED' }] });
        for (const answer of [anonymous, wrong, developer]) expect(answer.body).not.toContain(PRIVATE_REPOSITORY);
      }
    });

    it(`shows the page to an admin ${where}: a member of ADMIN_GROUP or the admin token`, async () => {
      const { layover, adminToken } = await layoverWith(TOKENS);
      for (const authorization of [`Bearer ${ADMIN_USER_TOKEN}`, `Basic ${Buffer.from(`ops:${ADMIN_USER_TOKEN}`).toString('base64')}`, `Bearer ${adminToken}`]) {
        const page = await get(layover, '/', authorization, dockerProxy);
        expect(page.status).toBe(200);
        expect(page.headers['content-type']).toMatch(/^text\/html/);
        expect(page.headers['content-security-policy']).toMatch(/script-src 'sha256-/);
        expect(page.headers['cache-control']).toBe('no-store');
        expect(page.body).toContain(`registry.test/${PRIVATE_REPOSITORY}`);
        const json = await get(layover, '/status.json', authorization, dockerProxy);
        expect(json.status).toBe(200);
        expect(JSON.parse(json.body)).toMatchObject({ tables: { 'top-by-pulls': [[`registry.test/${PRIVATE_REPOSITORY}`, '1', '512 B', expect.any(String)]] } });
      }
    });
  }

  it('is open, as the other service routes are, with client authentication off', async () => {
    const { layover } = await layoverWith([]);
    const page = await get(layover, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain(`registry.test/${PRIVATE_REPOSITORY}`);
    expect((await get(layover, '/status.json', undefined, true)).status).toBe(200);
  });
});
