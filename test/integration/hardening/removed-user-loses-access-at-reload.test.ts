/**
 * Issue 10, item 3: a token of Layover's token service is no key that outlives its user. A user
 * removed from the htpasswd file loses access when Layover reads the file again, and one whose
 * static token was removed when Layover starts with the new configuration, whatever the expiry of
 * the tokens they hold; a token bought with a JWT ends no later than that JWT. In process
 * (buildApp); the upstream resolver is a closed port, so a request past client authentication ends
 * in 503 UNAVAILABLE. The identity provider is test/fixtures/oidc-issuer.mjs (no real one here).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterEach, expect, it, onTestFinished, vi } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { startOidcIssuer } from '../client-auth/oidc-issuer-process.js';

const running: RunningLayover[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'layover-removed-user-'));
  dirs.push(dir);
  return dir;
}
async function start(flags: Record<string, string>): Promise<RunningLayover> {
  const layover = await startLayover({ registries: 'quay.io', 'client-auth-challenge': 'bearer', dns: 'off', ...flags });
  running.push(layover);
  return layover;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const pull = (layover: RunningLayover, authorization: string) =>
  layover.app.https.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { host: 'quay.io', authorization } });
async function tokenFor(layover: RunningLayover, authorization: string): Promise<{ token: string; expires_in: number }> {
  const res = await layover.app.https.inject({ method: 'GET', url: '/token?service=quay.io&scope=repository:team/app:pull', headers: { host: 'docker.proxy', authorization } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}
const htpasswdLine = (user: string, password: string): string => execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }).trim();

it('a user removed from the htpasswd file loses access at the next reload, with a token still unexpired', async () => {
  const dir = tempDir();
  const file = join(dir, 'htpasswd');
  const bob = htpasswdLine('bob', 'bob-password');
  writeFileSync(file, `${htpasswdLine('alice', 'alice-password')}\n${bob}\n`);
  const layover = await start({ 'client-auth': 'htpasswd', 'htpasswd-file': file, 'data-dir': join(dir, 'data') });
  const alice = `Bearer ${(await tokenFor(layover, basic('alice', 'alice-password'))).token}`;
  const bobToken = `Bearer ${(await tokenFor(layover, basic('bob', 'bob-password'))).token}`;
  expect((await pull(layover, alice)).statusCode).toBe(503);

  writeFileSync(file, `${bob}\n`);
  // The file is looked at again at most once a second: wait for the reload, not for a time.
  await vi.waitFor(async () => expect((await pull(layover, alice)).statusCode).toBe(401), { timeout: 15_000, interval: 200 });
  expect((await pull(layover, bobToken)).statusCode).toBe(503);
});

it('a user whose static token was removed loses access when Layover starts with the new configuration', async () => {
  const dir = tempDir();
  const config = (tokens: string[]): string => {
    const file = join(dir, 'layover.yaml');
    writeFileSync(file, ['clientAuth: tokens', 'clientTokens:', ...tokens, ''].join('\n'));
    return file;
  };
  const ci = '  - {user: ci, token: ci-token-0123456789ab}';
  const old = '  - {user: old-robot, token: old-robot-token-0123456789}';
  const first = await start({ config: config([ci, old]), 'data-dir': join(dir, 'data') });
  const robot = `Bearer ${(await tokenFor(first, basic('old-robot', 'old-robot-token-0123456789'))).token}`;
  const ciToken = `Bearer ${(await tokenFor(first, basic('ci', 'ci-token-0123456789ab'))).token}`;
  expect((await pull(first, robot)).statusCode).toBe(503);
  await first.close();

  // Same data dir, so the same signing key: the token still verifies, but its user is gone.
  const second = await start({ config: config([ci]), 'data-dir': join(dir, 'data') });
  expect((await pull(second, robot)).statusCode).toBe(401);
  expect((await pull(second, ciToken)).statusCode).toBe(503);
});

it('a token bought with a JWT expires no later than the JWT', async () => {
  const dir = tempDir();
  const idp = await startOidcIssuer(dir);
  onTestFinished(() => idp.close());
  const layover = await start({ 'client-auth': 'jwt', 'jwt-issuer': idp.issuer, 'jwt-audience': 'layover', 'upstream-ca': join(dir, 'oidc-ca', 'ca.crt'), 'data-dir': join(dir, 'data') });
  const jwtExp = Math.floor(Date.now() / 1000) + 45;
  const jwt = await idp.sign({ claims: { sub: 'ci-job', aud: 'layover', exp: jwtExp } });
  const answer = await tokenFor(layover, `Bearer ${jwt}`);
  expect(decodeJwt(answer.token).exp).toBeLessThanOrEqual(jwtExp);
  expect(answer.expires_in).toBeLessThanOrEqual(45);
  expect((await pull(layover, `Bearer ${answer.token}`)).statusCode).toBe(503);

  // Expired 10 s ago, still inside the clock tolerance: no token dead on arrival (clients would loop on 401s), a 401 asking for a fresh JWT.
  const stale = await idp.sign({ claims: { sub: 'ci-job', aud: 'layover', exp: Math.floor(Date.now() / 1000) - 10 } });
  const refused = await layover.app.https.inject({ method: 'GET', url: '/token?service=quay.io&scope=repository:team/app:pull', headers: { host: 'docker.proxy', authorization: `Bearer ${stale}` } });
  expect(refused.statusCode, refused.body).toBe(401);
  expect(refused.json().errors[0].message).toContain('log in again with a fresh one');
});
