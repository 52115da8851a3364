import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// In-process Layover with CLIENT_AUTH=tokens and CLIENT_AUTH_CHALLENGE=bearer, reached as a custom
// domain and as a mirror: clients there may neither resolve nor trust docker.proxy, so the token
// service answers at the name they used, and its tokens are for that name. The upstream resolver
// is a closed port, so a request past the client-auth hook ends in 503 UNAVAILABLE.
const CI_TOKEN = 'ci-token-3c2b1a0f9e8d';
const DOMAIN = 'docker.example.test';
const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(challenge: 'bearer' | 'basic' = 'bearer'): Promise<RunningLayover> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-token-names-'));
  dirs.push(dir);
  const file = join(dir, 'layover.yaml');
  writeFileSync(
    file,
    [
      'registries: [ghcr.io, quay.io]',
      'clientAuth: tokens',
      `clientAuthChallenge: ${challenge}`,
      'clientTokens:',
      `  - {user: ci, token: ${CI_TOKEN}, groups: [robots]}`,
      'customDomains:',
      `  - {from: ${DOMAIN}/team, to: ghcr.io/corp/team}`,
      'accessRules:',
      '  - {groups: [robots], registries: [ghcr.io], repositories: ["team/**"], actions: [pull]}',
      `  - {groups: [robots], registries: [${DOMAIN}], repositories: ["team/app"], actions: [pull]}`,
    ].join('\n'),
  );
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
  running.push(layover);
  return layover;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const get = (layover: RunningLayover, host: string, url: string, authorization?: string) =>
  layover.app.https.inject({ method: 'GET', url, headers: { host, ...(authorization ? { authorization } : {}) } });

/** The token a client gets at the realm and service of `challenge`, for its scope. */
async function tokenFrom(layover: RunningLayover, challenge: string): Promise<string> {
  const field = (name: string): string => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1] ?? '';
  const realm = new URL(field('realm'));
  realm.searchParams.set('service', field('service'));
  if (field('scope')) realm.searchParams.append('scope', field('scope'));
  const res = await get(layover, realm.host, `${realm.pathname}${realm.search}`, basic('ci', CI_TOKEN));
  expect(res.statusCode, res.body).toBe(200);
  return res.json().token as string;
}

describe('a custom domain with CLIENT_AUTH_CHALLENGE=bearer', () => {
  it('points its challenges at its own /token, whose tokens are for the domain', async () => {
    const layover = await start();
    const ping = await get(layover, DOMAIN, '/v2/');
    expect(ping.statusCode).toBe(401);
    expect(ping.headers['www-authenticate']).toBe(`Bearer realm="https://${DOMAIN}/token",service="${DOMAIN}"`);
    const refused = await get(layover, DOMAIN, '/v2/team/app/manifests/v1');
    const challenge = String(refused.headers['www-authenticate']);
    expect(challenge).toBe(`Bearer realm="https://${DOMAIN}/token",service="${DOMAIN}",scope="repository:team/app:pull"`);

    const token = await tokenFrom(layover, challenge);
    expect(decodeJwt(token)).toMatchObject({ sub: 'ci', aud: DOMAIN, access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect((await get(layover, DOMAIN, '/v2/', `Bearer ${token}`)).statusCode).toBe(200);
    expect((await get(layover, DOMAIN, '/v2/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(503);
    // The token is good for its access list only, in the client's names; a repository outside it
    // gets a challenge naming the scope it needs.
    const outside = await get(layover, DOMAIN, '/v2/team/lib/manifests/v1', `Bearer ${token}`);
    expect(outside.statusCode).toBe(401);
    expect(outside.headers['www-authenticate']).toBe(`Bearer realm="https://${DOMAIN}/token",service="${DOMAIN}",scope="repository:team/lib:pull",error="insufficient_scope"`);
    // A token for the domain is worth nothing at the registry's own name, and the reverse.
    expect((await get(layover, 'ghcr.io', '/v2/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(401);
    const ghcr = await tokenFrom(layover, 'Bearer realm="https://docker.proxy/token",service="ghcr.io",scope="repository:team/app:pull"');
    expect((await get(layover, DOMAIN, '/v2/team/app/manifests/v1', `Bearer ${ghcr}`)).statusCode).toBe(401);
  });

  it("issues only for the domain, takes containerd's POST, and asks for credentials itself", async () => {
    const layover = await start();
    for (const service of ['ghcr.io', '127.0.0.1', 'docker.proxy']) {
      const res = await get(layover, DOMAIN, `/token?service=${service}`, basic('ci', CI_TOKEN));
      expect(res.statusCode, service).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: `service must be ${DOMAIN}` });
    }
    const anonymous = await get(layover, DOMAIN, `/token?service=${DOMAIN}`);
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Basic realm="Layover"');
    const post = await layover.app.https.inject({
      method: 'POST',
      url: '/token',
      headers: { host: DOMAIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'password', username: 'ci', password: CI_TOKEN, service: DOMAIN, scope: 'repository:team/app:pull repository:team/lib:pull' }).toString(),
    });
    expect(post.statusCode).toBe(200);
    expect(post.json().scope).toBe('repository:team/app:pull');
    const tooBig = await layover.app.https.inject({ method: 'POST', url: '/token', headers: { host: DOMAIN, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a='.padEnd(20_000, 'x') });
    expect(tooBig.statusCode).toBe(400);
  });

  it('with CLIENT_AUTH_CHALLENGE=basic has no token service', async () => {
    const layover = await start('basic');
    expect((await get(layover, DOMAIN, '/v2/')).headers['www-authenticate']).toBe('Basic realm="Layover"');
    const token = await get(layover, DOMAIN, `/token?service=${DOMAIN}`, basic('ci', CI_TOKEN));
    expect(token.statusCode).toBe(404);
    expect(token.json().errors[0].code).toBe('NOT_FOUND');
  });
});

describe('mirror clients with CLIENT_AUTH_CHALLENGE=bearer', () => {
  it("containerd's ns: the realm and service are the name it used, the ns rides in the realm", async () => {
    const layover = await start();
    const refused = await get(layover, '127.0.0.1', '/v2/team/app/manifests/v1?ns=ghcr.io');
    expect(refused.statusCode).toBe(401);
    const challenge = String(refused.headers['www-authenticate']);
    expect(challenge).toBe('Bearer realm="https://127.0.0.1/token?ns=ghcr.io",service="127.0.0.1",scope="repository:team/app:pull"');
    const token = await tokenFrom(layover, challenge);
    expect(decodeJwt(token)).toMatchObject({ aud: '127.0.0.1', access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] });
    expect((await get(layover, '127.0.0.1', '/v2/team/app/manifests/v1?ns=ghcr.io', `Bearer ${token}`)).statusCode).toBe(503);
    // The registry the client names is judged on every request.
    const denied = await get(layover, '127.0.0.1', '/v2/team/app/manifests/v1?ns=quay.io', `Bearer ${token}`);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().errors[0].message).toBe('ci may not pull quay.io/team/app');
    // Another name of Layover's, or the registry's own name: not what the token is for.
    expect((await get(layover, 'localhost', '/v2/team/app/manifests/v1?ns=ghcr.io', `Bearer ${token}`)).statusCode).toBe(401);
    expect((await get(layover, 'ghcr.io', '/v2/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(401);

    const post = await layover.app.https.inject({
      method: 'POST',
      url: '/token?ns=ghcr.io',
      headers: { host: '127.0.0.1', 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'password', username: 'ci', password: CI_TOKEN, service: '127.0.0.1', client_id: 'containerd-client', scope: 'repository:team/app:pull repository:other:pull' }).toString(),
    });
    expect(post.statusCode).toBe(200);
    expect(post.json().scope).toBe('repository:team/app:pull');
  });

  it('a podman mirror path: the bare ping is challenged too, and the scope names the registry prefix', async () => {
    const layover = await start();
    const ping = await get(layover, '127.0.0.1', '/v2/');
    expect(ping.statusCode).toBe(401);
    expect(ping.headers['www-authenticate']).toBe('Bearer realm="https://127.0.0.1/token",service="127.0.0.1"');
    const refused = await get(layover, '127.0.0.1', '/v2/ghcr.io/team/app/manifests/v1');
    const challenge = String(refused.headers['www-authenticate']);
    expect(challenge).toBe('Bearer realm="https://127.0.0.1/token",service="127.0.0.1",scope="repository:ghcr.io/team/app:pull"');
    const token = await tokenFrom(layover, challenge);
    expect(decodeJwt(token)).toMatchObject({ aud: '127.0.0.1', access: [{ type: 'repository', name: 'ghcr.io/team/app', actions: ['pull'] }] });
    expect((await get(layover, '127.0.0.1', '/v2/', `Bearer ${token}`)).statusCode).toBe(200);
    expect((await get(layover, '127.0.0.1', '/v2/ghcr.io/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(503);
    expect((await get(layover, '127.0.0.1', '/v2/quay.io/team/app/manifests/v1', `Bearer ${token}`)).statusCode).toBe(401); // not in its access list
    // Basic keeps working.
    expect((await get(layover, '127.0.0.1', '/v2/ghcr.io/team/app/manifests/v1', basic('ci', CI_TOKEN))).statusCode).toBe(503);
  });

  it('issues for the mirror name only, and refuses a ns Layover does not proxy', async () => {
    const layover = await start();
    for (const service of ['ghcr.io', 'localhost', DOMAIN]) {
      const res = await get(layover, '127.0.0.1', `/token?service=${service}`, basic('ci', CI_TOKEN));
      expect(res.statusCode, service).toBe(400);
      expect(res.json().error_description).toBe('service must be 127.0.0.1');
    }
    const ns = await get(layover, '127.0.0.1', '/token?ns=evil.example&service=127.0.0.1', basic('ci', CI_TOKEN));
    expect(ns.statusCode).toBe(404);
    expect(ns.json().errors[0].code).toBe('NAME_UNKNOWN');
    // docker.proxy is both: the realm of registries' own names, and a name mirror clients may use.
    expect(decodeJwt(await tokenFrom(layover, 'Bearer realm="https://docker.proxy/token",service="docker.proxy"')).aud).toBe('docker.proxy');
    expect(decodeJwt(await tokenFrom(layover, 'Bearer realm="https://docker.proxy/token",service="quay.io"')).aud).toBe('quay.io');
  });

  it("/token on a registry's own name is that registry's: a registry request like any other, not Layover's token service", async () => {
    const layover = await start();
    expect((await get(layover, 'ghcr.io', '/token?service=ghcr.io')).statusCode).toBe(401);
    // Judged by the policy as a request about no repository of ghcr.io (the rules name repositories).
    const judged = await get(layover, 'ghcr.io', '/token?service=ghcr.io', basic('ci', CI_TOKEN));
    expect(judged.statusCode).toBe(403);
    expect(judged.json().errors[0].message).toBe('ci may not pull on ghcr.io');
  });
});
