import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';
import { BLOCK_MS, MAX_FAILURES } from '../../../src/client-auth/sign-in-throttle.js';

// In-process Layover with CLIENT_AUTH=htpasswd (cost 10, as `htpasswd -B` writes by default: tens of
// milliseconds a check) and its token service. One address sends new wrong passwords as fast as it
// can; a node at another address signing in must not wait behind all of them, nor be refused.
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
let dir: string;
let layover: RunningLayover;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-sign-in-turns-'));
  const line = (user: string, password: string): string => execFileSync('htpasswd', ['-Bbn', '-C', '10', user, password], { encoding: 'utf8' }).trim();
  writeFileSync(join(dir, 'htpasswd'), `${line('carol', 'carol-pw')}\n${line('dave', 'dave-pw')}\n`);
  const file = join(dir, 'layover.yaml');
  writeFileSync(file, ['registries: [ghcr.io]', 'clientAuth: htpasswd', `htpasswdFile: ${join(dir, 'htpasswd')}`, 'clientAuthChallenge: bearer'].join('\n'));
  layover = await startLayover({ config: file, 'data-dir': join(dir, 'data') });
});
afterAll(async () => {
  await layover?.close();
  rmSync(dir, { recursive: true, force: true });
});

const tokenRequest = (authorization: string, remoteAddress: string) =>
  layover.app.https.inject({ method: 'GET', url: '/token?service=ghcr.io', remoteAddress, headers: { host: 'docker.proxy', authorization } });

it('checks a node’s first sign-in between the checks of an address sending wrong passwords, by client address', async () => {
  const checked: string[] = [];
  // Each guess for a user name of its own (checked at a real hash's cost): the sign-in throttle holds one user's guesses to ten.
  const flood = Array.from({ length: 40 }, (_, i) =>
    tokenRequest(basic(`carol-${i}`, `guess-${i}`), '192.0.2.66').then((res) => {
      if (res.statusCode !== 503) checked.push(`flood ${res.statusCode}`);
      return res;
    }),
  );
  const node = tokenRequest(basic('carol', 'carol-pw'), '192.0.2.10').then((res) => {
    checked.push(`node ${res.statusCode}`);
    return res;
  });
  // Through the registry hook too, from a third address (dave: not remembered from the token request).
  const hook = layover.app.https.inject({ method: 'GET', url: '/v2/', remoteAddress: '192.0.2.11', headers: { host: 'ghcr.io', authorization: basic('dave', 'dave-pw') } });

  expect((await node).statusCode).toBe(200);
  // Signed in, the ping is answered by the hook itself (200), never refused by the sign-in queue.
  const hooked = await hook;
  expect(hooked.statusCode, hooked.body).toBe(200);
  const answers = await Promise.all(flood);
  // Those the full queue could not take were refused at once, with Retry-After; the others checked and refused.
  const refused = answers.filter((res) => res.statusCode === 503);
  for (const res of refused) {
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json().errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/too many sign-ins/) });
  }
  expect(answers.filter((res) => res.statusCode === 401).length).toBe(40 - refused.length);
  // The node took its turn among the flood's checks (the second turn when they all came at once), not after them.
  const floodAfterNode = checked.slice(checked.indexOf('node 200') + 1).filter((line) => line.startsWith('flood')).length;
  expect(floodAfterNode).toBeGreaterThanOrEqual(20);
}, 60_000);

it('answers a client that keeps sending different wrong passwords for one user 429 with Retry-After, in the OCI format', async () => {
  const ping = (password: string) =>
    layover.app.https.inject({ method: 'GET', url: '/v2/', remoteAddress: '192.0.2.77', headers: { host: 'ghcr.io', authorization: basic('dave', password) } });
  for (let i = 0; i < MAX_FAILURES; i++) expect((await ping(`wrong-${i}`)).statusCode).toBe(401);
  // Its right password too, for a while: a guesser cannot tell a right guess meanwhile.
  const held = await ping('dave-pw');
  expect(held.statusCode).toBe(429);
  expect(held.headers['retry-after']).toBe(String(BLOCK_MS / 1000));
  expect(held.json().errors[0]).toMatchObject({ code: 'TOOMANYREQUESTS' });
  // Another address signs in as dave as usual.
  const other = await layover.app.https.inject({ method: 'GET', url: '/v2/', remoteAddress: '192.0.2.78', headers: { host: 'ghcr.io', authorization: basic('dave', 'dave-pw') } });
  expect(other.statusCode).toBe(200);
}, 60_000);

