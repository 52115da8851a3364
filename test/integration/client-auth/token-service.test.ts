import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover with CLIENT_AUTH=tokens and CLIENT_AUTH_CHALLENGE=bearer: its 401s send clients
// to https://docker.proxy/token, whose tokens the registry names then accept. The upstream resolver
// is a closed port, so a request past the hook ends in 503 UNAVAILABLE.
const CI_TOKEN = 'ci-token-8d1e2f3a4b5c';
const BOB_TOKEN = 'bob-token-0f9e8d7c6b5a';
const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(challenge: 'bearer' | 'basic' = 'bearer', more: { registries?: string; rules?: string[] } = {}): Promise<RunningLayover> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-token-service-'));
  dirs.push(dir);
  const file = join(dir, 'layover.yaml');
  writeFileSync(
    file,
    [
      `registries: [${more.registries ?? 'ghcr.io, quay.io'}]`,
      'clientAuth: tokens',
      `clientAuthChallenge: ${challenge}`,
      'clientTokens:',
      `  - {user: ci, token: ${CI_TOKEN}, groups: [robots]}`,
      `  - {user: bob, token: ${BOB_TOKEN}}`,
      'accessRules:',
      '  - {groups: [robots], repositories: ["team/**"], actions: [pull]}',
      ...(more.rules ?? []),
    ].join('\n'),
  );
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
  running.push(layover);
  return layover;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const registry = (layover: RunningLayover, url: string, authorization?: string, host = 'ghcr.io') =>
  layover.app.https.inject({ method: 'GET', url, headers: { host, ...(authorization ? { authorization } : {}) } });
const tokenGet = (layover: RunningLayover, query: string, authorization?: string) =>
  layover.app.https.inject({ method: 'GET', url: `/token?${query}`, headers: { host: 'docker.proxy', ...(authorization ? { authorization } : {}) } });

async function tokenFor(layover: RunningLayover, scopes: string[], service = 'ghcr.io'): Promise<string> {
  const query = [`service=${service}`, ...scopes.map((s) => `scope=${encodeURIComponent(s)}`), 'account=ci'].join('&');
  const res = await tokenGet(layover, query, basic('ci', CI_TOKEN));
  expect(res.statusCode, res.body).toBe(200);
  return res.json().token as string;
}

describe('the Bearer challenge', () => {
  it('points at https://docker.proxy/token with the registry name as service and the repository as scope', async () => {
    const layover = await start();
    const ping = await registry(layover, '/v2/');
    expect(ping.statusCode).toBe(401);
    expect(ping.headers['www-authenticate']).toBe('Bearer realm="https://docker.proxy/token",service="ghcr.io"');
    const manifest = await registry(layover, '/v2/team/app/manifests/v1', undefined, 'quay.io');
    expect(manifest.headers['www-authenticate']).toBe('Bearer realm="https://docker.proxy/token",service="quay.io",scope="repository:team/app:pull"');
    expect(manifest.json().errors[0].code).toBe('UNAUTHORIZED');
    const wrong = await registry(layover, '/v2/team/app/manifests/v1', 'Bearer not-a-token');
    expect(wrong.statusCode).toBe(401);
  });

  it('with CLIENT_AUTH_CHALLENGE=basic nothing changes: a Basic challenge and no token service', async () => {
    const layover = await start('basic');
    expect((await registry(layover, '/v2/')).headers['www-authenticate']).toBe('Basic realm="Layover"');
    const token = await tokenGet(layover, 'service=ghcr.io', basic('ci', CI_TOKEN));
    expect(token.statusCode).toBe(404);
  });
});

describe('the token service at https://docker.proxy/token', () => {
  it('issues a token with the access the policy allows, dropping the rest', async () => {
    const layover = await start();
    const query = 'service=ghcr.io&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&scope=repository%3Aother%2Fx%3Apull&account=ci';
    const res = await tokenGet(layover, query, basic('ci', CI_TOKEN));
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toMatchObject({ expires_in: 900, scope: 'repository:team/app:pull' });
    expect(body.access_token).toBe(body.token);
    expect(Math.abs(Date.parse(body.issued_at) - Date.now())).toBeLessThan(5_000);
    expect(decodeJwt(body.token)).toMatchObject({ sub: 'ci', aud: 'ghcr.io', groups: ['robots'], access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect(statSync(join(layover.dataDir, TOKEN_KEY_FILE)).mode & 0o777).toBe(0o600);
  });

  it('answers a client without or with wrong credentials 401 with a Basic challenge', async () => {
    const layover = await start();
    for (const authorization of [undefined, basic('ci', 'wrong-token-000000'), `Bearer ${CI_TOKEN}x`]) {
      const res = await tokenGet(layover, 'service=ghcr.io&scope=repository%3Ateam%2Fapp%3Apull', authorization);
      expect(res.statusCode, String(authorization)).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="Layover"');
    }
  });

  it('takes the OAuth2 form of containerd (grant_type=password) and refuses other grants and unknown services with 400', async () => {
    const layover = await start();
    const post = (form: Record<string, string>) =>
      layover.app.https.inject({ method: 'POST', url: '/token', headers: { host: 'docker.proxy', 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(form).toString() });
    const ok = await post({ grant_type: 'password', username: 'ci', password: CI_TOKEN, service: 'ghcr.io', client_id: 'containerd-client', scope: 'repository:team/app:pull repository:team/lib:pull' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().scope).toBe('repository:team/app:pull repository:team/lib:pull');
    expect((await post({ grant_type: 'password', username: 'ci', password: 'nope', service: 'ghcr.io' })).statusCode).toBe(401);
    const refresh = await post({ grant_type: 'refresh_token', refresh_token: 'x', service: 'ghcr.io' });
    expect(refresh.statusCode).toBe(400);
    expect(refresh.json().error).toBe('unsupported_grant_type');
    for (const query of ['service=example.org', 'service=127.0.0.1', 'scope=repository%3Aa%3Apull']) {
      const res = await tokenGet(layover, query, basic('ci', CI_TOKEN));
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error).toBe('invalid_request');
    }
  });
});

describe('registry requests with a token of Layover', () => {
  it('are let in for the registry name the token is for, and the access policy is asked again', async () => {
    const layover = await start();
    const token = await tokenFor(layover, ['repository:team/app:pull']);
    expect((await registry(layover, '/v2/', `Bearer ${token}`)).statusCode).toBe(200);
    const allowed = await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${token}`);
    expect(allowed.statusCode).toBe(503); // past the hook: the upstream is unreachable in this test
    // Another repository, even one the policy allows: the token is good for its access list only,
    // and the challenge names the scope the client must come back with.
    for (const name of ['team/lib', 'other/x']) {
      const outside = await registry(layover, `/v2/${name}/manifests/v1`, `Bearer ${token}`);
      expect(outside.statusCode).toBe(401);
      expect(outside.headers['www-authenticate']).toContain(`scope="repository:${name}:pull",error="insufficient_scope"`);
    }
    const elsewhere = await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${token}`, 'quay.io');
    expect(elsewhere.statusCode).toBe(401);
    expect(elsewhere.headers['www-authenticate']).toContain('service="quay.io"');
  });

  it('a token signed by another Layover (another data dir) is not accepted', async () => {
    const one = await start();
    const two = await start();
    const token = await tokenFor(one, ['repository:team/app:pull']);
    expect((await registry(two, '/v2/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(401);
  });

  it('Basic credentials and static tokens keep working in bearer mode', async () => {
    const layover = await start();
    expect((await registry(layover, '/v2/team/app/manifests/v1', basic('ci', CI_TOKEN))).statusCode).toBe(503);
    expect((await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${CI_TOKEN}`)).statusCode).toBe(503);
    expect((await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${BOB_TOKEN}`)).statusCode).toBe(403);
  });

  it('neither the credentials nor the tokens reach the log', async () => {
    const layover = await start();
    const token = await tokenFor(layover, ['repository:team/app:pull']);
    await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${token}`);
    await layover.app.https.inject({
      method: 'POST',
      url: '/token',
      headers: { host: 'docker.proxy', 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=password&username=ci&password=${CI_TOKEN}&service=ghcr.io`,
    });
    await tokenGet(layover, `service=ghcr.io&password=${BOB_TOKEN}`, basic('ci', CI_TOKEN));
    const log = JSON.stringify(layover.logs);
    expect(log).toContain('"tokenRequest":"issued"');
    expect(log).toContain('"granted":"repository:team/app:pull"');
    for (const secret of [CI_TOKEN, BOB_TOKEN, token, token.split('.')[2]!, Buffer.from(`ci:${CI_TOKEN}`).toString('base64')]) expect(log).not.toContain(secret);
  });
});

describe('a registry at a port of its own (REGISTRIES host:port)', () => {
  // Two registries on one host: tokens and rules name the port, as Docker names the registry.
  const ported = () => start('bearer', { registries: 'r.example:5000, r.example:5001', rules: ['  - {users: [bob], registries: ["r.example:5001"], actions: [pull]}'] });

  it('is the service of its challenge, and gets tokens for itself only', async () => {
    const layover = await ported();
    const challenge = await registry(layover, '/v2/team/app/manifests/v1', undefined, 'r.example:5000');
    expect(challenge.headers['www-authenticate']).toBe('Bearer realm="https://docker.proxy/token",service="r.example:5000",scope="repository:team/app:pull"');
    // Refused with 400 (service "r.example" at no configured port) before.
    const token = await tokenFor(layover, ['repository:team/app:pull'], 'r.example:5000');
    expect(decodeJwt(token)).toMatchObject({ aud: 'r.example:5000', access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect((await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${token}`, 'r.example:5000')).statusCode).toBe(503); // past the hook
    expect((await registry(layover, '/v2/team/app/manifests/v1', `Bearer ${token}`, 'r.example:5001')).statusCode).toBe(401);
  });

  it('is what a rule naming the port allows; the other port of the host is another registry', async () => {
    const layover = await ported();
    const scope = 'scope=repository%3Aany%2Fthing%3Apull';
    const at5001 = await tokenGet(layover, `service=r.example:5001&${scope}`, basic('bob', BOB_TOKEN));
    expect(at5001.json().scope).toBe('repository:any/thing:pull');
    const at5000 = await tokenGet(layover, `service=r.example:5000&${scope}`, basic('bob', BOB_TOKEN));
    expect(at5000.json().scope ?? '').toBe('');
    expect((await registry(layover, '/v2/any/thing/manifests/v1', basic('bob', BOB_TOKEN), 'r.example:5001')).statusCode).toBe(503);
    expect((await registry(layover, '/v2/any/thing/manifests/v1', basic('bob', BOB_TOKEN), 'r.example:5000')).statusCode).toBe(403);
  });
});
