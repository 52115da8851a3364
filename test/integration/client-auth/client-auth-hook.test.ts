import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover with CLIENT_AUTH=tokens; its upstream resolver is a closed port, so a request
// that passes the hook ends in 503 UNAVAILABLE, and one refused by it never gets that far.
const CI_TOKEN = 'ci-token-4f9a0c1d2e3b';
const BOB_TOKEN = 'bob-token-77e1a2b3c4d5';
const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
/** A temp dir removed after the test. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'layover-client-auth-'));
  dirs.push(dir);
  return dir;
}

async function withTokens(extra = ''): Promise<RunningLayover> {
  const dir = tempDir();
  const file = join(dir, 'layover.yaml');
  writeFileSync(
    file,
    [
      'registries: [ghcr.io]',
      'clientAuth: tokens',
      'clientTokens:',
      `  - {user: ci, token: ${CI_TOKEN}, groups: [robots]}`,
      `  - {user: bob, token: ${BOB_TOKEN}}`,
      'accessRules:',
      '  - {groups: [robots], repositories: ["team/**"], actions: [pull]}',
      extra,
    ].join('\n'),
  );
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
  running.push(layover);
  return layover;
}

const get = (layover: RunningLayover, url: string, authorization?: string, method: 'GET' | 'PUT' = 'GET') =>
  layover.app.https.inject({ method, url, headers: { host: 'ghcr.io', ...(authorization ? { authorization } : {}) } });

describe('client authentication in the proxy', () => {
  it('answers a client without credentials 401 UNAUTHORIZED with a Basic challenge, before anything else', async () => {
    const layover = await withTokens();
    for (const url of ['/v2/', '/v2/team/app/manifests/v1', '/v2/team/app/blobs/sha256:' + 'a'.repeat(64), '/token?scope=x']) {
      const res = await get(layover, url);
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="Layover"');
      expect(res.json().errors[0]).toMatchObject({ code: 'UNAUTHORIZED' });
    }
    const wrong = await get(layover, '/v2/team/app/manifests/v1', 'Bearer not-a-token-at-all');
    expect(wrong.statusCode).toBe(401);
    expect((await get(layover, '/v2/x/blobs/uploads/', undefined, 'PUT')).statusCode).toBe(401);
  });

  it('never holds back a token sent as a password: tokens cannot be guessed, and expired ones must not lock out valid ones', async () => {
    const layover = await withTokens();
    const password = (token: string): string => `Basic ${Buffer.from(`ci:${token}`).toString('base64')}`;
    for (let i = 0; i < 30; i++) expect((await get(layover, '/v2/team/app/manifests/v1', password(`expired-${i}`))).statusCode).toBe(401);
    expect((await get(layover, '/v2/', password(CI_TOKEN))).statusCode).toBe(200);
  });

  it('answers the ping of an authenticated client itself, so it keeps using Basic with Layover', async () => {
    const layover = await withTokens();
    const res = await get(layover, '/v2/', 'Bearer ' + BOB_TOKEN);
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('{}');
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('answers 403 DENIED where no rule allows, and lets allowed requests through to the upstream', async () => {
    const layover = await withTokens();
    const basicCi = `Basic ${Buffer.from(`ci:${CI_TOKEN}`).toString('base64')}`;
    const denied = await get(layover, '/v2/other/app/manifests/v1', basicCi);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().errors[0]).toMatchObject({ code: 'DENIED', message: 'ci may not pull ghcr.io/other/app' });
    const bob = await get(layover, '/v2/team/app/manifests/v1', 'Bearer ' + BOB_TOKEN);
    expect(bob.statusCode).toBe(403);
    const allowed = await get(layover, '/v2/team/app/manifests/v1', basicCi);
    expect(allowed.statusCode).toBe(503); // past the hook: the upstream is unreachable in this test
    expect(allowed.json().errors[0].code).toBe('UNAVAILABLE');
    // Every method is judged by the policy, pushes too while ALLOW_PUSH is off: ci may only pull.
    expect((await get(layover, '/v2/team/app/blobs/uploads/', basicCi, 'PUT')).statusCode).toBe(403);
    // A push the policy allows still meets the route's UNSUPPORTED: pushing stays off (ALLOW_PUSH).
    const pusher = await withTokens('  - {users: [bob], actions: [pull, push]}');
    expect((await get(pusher, '/v2/team/app/blobs/uploads/', 'Bearer ' + BOB_TOKEN, 'PUT')).statusCode).toBe(405);
  });

  it('leaves the service routes alone and never logs a token', async () => {
    const layover = await withTokens();
    const health = await layover.app.https.inject({ method: 'GET', url: '/healthz', headers: { host: '127.0.0.1' } });
    expect(health.statusCode).toBe(200);
    await get(layover, '/v2/team/app/manifests/v1', 'Bearer ' + CI_TOKEN);
    await get(layover, '/v2/team/app/manifests/v1', 'Bearer ' + BOB_TOKEN + 'x');
    const log = JSON.stringify(layover.logs);
    expect(log).toContain('"user":"ci"');
    expect(log).toContain('"clientAuth":"rejected"');
    for (const secret of [CI_TOKEN, BOB_TOKEN]) expect(log).not.toContain(secret);
  });
});

describe('start-up warning', () => {
  it('warns when upstream credentials are configured and clients are not authenticated', async () => {
    const layover = await startLayover({ registries: 'ghcr.io', 'data-dir': tempDir() }, { AUTH_REGISTRIES: 'ghcr.io:alice:s3cret-value' });
    running.push(layover);
    const warning = layover.logs.find((l) => l.msg.startsWith('upstream credentials are configured but clients are not authenticated'));
    expect(warning).toMatchObject({ level: 40, clientAuth: 'none', credentials: 1 });
    expect(JSON.stringify(layover.logs)).not.toContain('s3cret-value');
  });

  it('does not warn without upstream credentials', async () => {
    const layover = await startLayover({ registries: 'ghcr.io', 'data-dir': tempDir() });
    running.push(layover);
    expect(layover.logs.some((l) => l.msg.startsWith('upstream credentials are configured'))).toBe(false);
  });
});
