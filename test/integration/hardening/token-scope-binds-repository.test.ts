/**
 * Issue 10, item 3: a token of Layover's token service is good for what its `access` claim lists
 * (the Docker token specification), not for whatever the access policy would allow its user.
 * CLIENT_AUTH=tokens with CLIENT_AUTH_CHALLENGE=bearer (./layover-with-config.ts).
 */
import { decodeJwt } from 'jose';
import { expect, it } from 'vitest';
import type { RunningLayover } from '../../helpers/start-layover.js';
import { startLayoverWithConfig } from './layover-with-config.js';

const CI_TOKEN = 'ci-token-1a2b3c4d5e6f';

// The policy lets ci pull and push every repository: only the token's scope stands in the way.
const start = (): Promise<RunningLayover> =>
  startLayoverWithConfig(['registries: [quay.io]', 'clientAuth: tokens', 'clientAuthChallenge: bearer', 'allowPush: true', 'clientTokens:', `  - {user: ci, token: ${CI_TOKEN}}`, 'accessRules:', '  - {users: [ci], actions: [pull, push]}']);

const basic = `Basic ${Buffer.from(`ci:${CI_TOKEN}`).toString('base64')}`;
const send = (running: RunningLayover, method: 'GET' | 'HEAD' | 'POST', url: string, authorization: string) =>
  running.app.https.inject({ method, url, headers: { host: 'quay.io', authorization } });

async function tokenFor(running: RunningLayover, scope: string): Promise<string> {
  const res = await running.app.https.inject({ method: 'GET', url: `/token?service=quay.io&scope=${encodeURIComponent(scope)}`, headers: { host: 'docker.proxy', authorization: basic } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().token as string;
}

it('a token for library/lark:pull reads library/lark only, and pushes nothing', async () => {
  const running = await start();
  const token = await tokenFor(running, 'repository:library/lark:pull');
  expect(decodeJwt(token).access).toEqual([{ type: 'repository', name: 'library/lark', actions: ['pull'] }]);
  const bearer = `Bearer ${token}`;
  // Its own repository: past client authentication (the upstream is unreachable here).
  expect((await send(running, 'GET', '/v2/library/lark/manifests/latest', bearer)).statusCode).toBe(503);
  for (const method of ['GET', 'HEAD'] as const) {
    const other = await send(running, method, '/v2/library/finch/manifests/latest', bearer);
    expect(other.statusCode, method).toBe(401);
    expect(other.headers['www-authenticate']).toBe('Bearer realm="https://docker.proxy/token",service="quay.io",scope="repository:library/finch:pull",error="insufficient_scope"');
  }
  expect((await send(running, 'GET', '/v2/library/finch/blobs/sha256:' + 'a'.repeat(64), bearer)).statusCode).toBe(401);
  expect((await send(running, 'GET', '/v2/library/finch/tags/list', bearer)).statusCode).toBe(401);
  expect((await send(running, 'GET', '/v2/_catalog', bearer)).statusCode).toBe(401);
  const push = await send(running, 'POST', '/v2/library/lark/blobs/uploads/', bearer);
  expect(push.statusCode).toBe(401);
  expect(push.headers['www-authenticate']).toContain('scope="repository:library/lark:pull,push",error="insufficient_scope"');
  expect(push.json().errors[0]).toMatchObject({ code: 'UNAUTHORIZED' });
});

it('a token that names push may push its repository, and only it', async () => {
  const running = await start();
  const bearer = `Bearer ${await tokenFor(running, 'repository:library/lark:pull,push')}`;
  expect((await send(running, 'POST', '/v2/library/lark/blobs/uploads/', bearer)).statusCode).toBe(503);
  expect((await send(running, 'POST', '/v2/library/finch/blobs/uploads/', bearer)).statusCode).toBe(401);
});
