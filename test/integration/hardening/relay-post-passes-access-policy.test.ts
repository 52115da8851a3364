import { expect, it } from 'vitest';
import type { RunningLayover } from '../../helpers/start-layover.js';
import { startLayoverWithConfig } from './layover-with-config.js';

// CLIENT_AUTH=tokens and pushes off; Layover holds credentials for ghcr.io and quay.io, so
// `/_layover/token` on them relays to the registry's realm. A request the policy lets through
// ends in 503 UNAVAILABLE (no upstream resolver here), one it refuses is a 403.
const CI_TOKEN = 'ci-token-4f9a0c1d2e3b';
const BOB_TOKEN = 'bob-token-77e1a2b3c4d5';

const start = (): Promise<RunningLayover> =>
  startLayoverWithConfig(
    ['registries: [ghcr.io, quay.io]', 'clientAuth: tokens', 'clientTokens:', `  - {user: ci, token: ${CI_TOKEN}}`, `  - {user: bob, token: ${BOB_TOKEN}}`, 'accessRules:', '  - {users: [ci], registries: [ghcr.io], actions: [pull]}'],
    { AUTH_REGISTRIES: 'ghcr.io:alice:s3cret-value quay.io:alice:s3cret-value' },
  );

const relay = (running: RunningLayover, method: 'GET' | 'POST', host: string, token: string) =>
  running.app.https.inject({
    method,
    url: '/_layover/token?service=ghcr.io&scope=repository:team/app:pull',
    headers: { host, authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
    ...(method === 'POST' ? { payload: 'grant_type=password&username=u&password=p&service=ghcr.io' } : {}),
  });

it('judges a POST to the token relay by the access policy, as a GET, before anything goes upstream', async () => {
  const running = await start();
  for (const method of ['GET', 'POST'] as const) {
    // bob may use no registry at all; ci may not use quay.io.
    for (const [host, token] of [['ghcr.io', BOB_TOKEN], ['quay.io', CI_TOKEN]] as const) {
      const res = await relay(running, method, host, token);
      expect(res.statusCode, `${method} ${host}`).toBe(403);
      expect(res.json().errors[0]).toMatchObject({ code: 'DENIED' });
    }
    // Allowed: it gets as far as the (unreachable) upstream.
    const allowed = await relay(running, method, 'ghcr.io', CI_TOKEN);
    expect(allowed.statusCode, `${method} allowed`).not.toBe(403);
  }
  const unauthenticated = running.logs.filter((line) => line.msg === 'request' && line.clientAuth === 'missing');
  expect(unauthenticated).toEqual([]);
});
