import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LayoverTokens } from '../../../src/client-auth/token-service/layover-tokens.js';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { PEOPLE, type Slapd, startSlapd } from '../../helpers/slapd.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// CLIENT_AUTH=ldap with CLIENT_AUTH_CHALLENGE=bearer and no LDAP_BIND_DN, against Debian's real slapd
// (test/helpers/slapd.ts: anonymous clients may bind but not read entries). A token of Layover's is
// re-checked by looking its user up; a look-up the directory refused used to count as "still there",
// so such a token outlived its user's removal until it expired. Now it is refused, unless a bind as
// that user proved the entry within CLIENT_AUTH_CACHE_TTL; and without LDAP_BIND_DN the token
// service issues tokens no longer than that, which then need no look-up on any replica. The
// upstream resolver is a closed port: a request past the client-auth hook ends in 503 UNAVAILABLE,
// one refused by it in 401.
const ALICE = { uid: 'alice', password: 'alice-pw-51c0e' };
const running: RunningLayover[] = [];
let dir: string;
let slapd: Slapd;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-ldap-unconfirmed-'));
  slapd = await startSlapd({ users: [ALICE], servicePassword: 'service-pw-9e2a1', parentDir: dir });
}, 60_000);
afterEach(async () => {
  await Promise.all(running.splice(0).map((layover) => layover.close()));
});
afterAll(async () => {
  await slapd?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A Layover without LDAP_BIND_DN, in a data dir of its own, signing with the token key in `keyFile`. */
async function start(keyFile: string): Promise<RunningLayover> {
  const layover = await startLayover(
    { 'data-dir': mkdtempSync(join(dir, 'data-')), registries: 'ghcr.io' },
    { CLIENT_AUTH: 'ldap', CLIENT_AUTH_CHALLENGE: 'bearer', CLIENT_TOKEN_KEY_FILE: keyFile, LDAP_URL: slapd.url, LDAP_USER_DN: `uid={user},${PEOPLE}` },
  );
  running.push(layover);
  return layover;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const pull = (layover: RunningLayover, token: string) =>
  layover.app.https.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { host: 'ghcr.io', authorization: `Bearer ${token}` } });
const tokenRequest = (layover: RunningLayover) =>
  layover.app.https.inject({
    method: 'GET',
    url: '/token?service=ghcr.io&scope=repository%3Ateam%2Fapp%3Apull',
    headers: { host: 'docker.proxy', authorization: basic(ALICE.uid, ALICE.password) },
  });

describe('LDAP without LDAP_BIND_DN: tokens of Layover\'s', () => {
  it('a token that outlives CLIENT_AUTH_CACHE_TTL is refused where the directory will not confirm its user, not kept until it expires', async () => {
    const keyFile = join(mkdtempSync(join(dir, 'keys-')), TOKEN_KEY_FILE);
    // As a Layover issued it with LDAP_BIND_DN, or before this change: for CLIENT_TOKEN_TTL (15 min).
    const issuer = await LayoverTokens.open(keyFile, 15 * 60_000);
    const { token } = await issuer.issue({ user: ALICE.uid, groups: [] }, 'ghcr.io', [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    const layover = await start(keyFile);
    const refused = await pull(layover, token);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().errors[0].code).toBe('UNAUTHORIZED');
    // Once she logs in (a bind as alice), that bind vouches for her entry for CLIENT_AUTH_CACHE_TTL.
    expect((await tokenRequest(layover)).statusCode).toBe(200);
    expect((await pull(layover, token)).statusCode).toBe(503);
    // Told at start, and once more when the directory refused the look-up.
    expect(layover.logs.filter((line) => line.level === 40 && String(line.msg).includes('without LDAP_BIND_DN'))).toHaveLength(1);
    expect(layover.logs.filter((line) => line.level === 40 && String(line.msg).includes('does not let Layover look users up'))).toHaveLength(1);
  });

  it('the token service issues them for CLIENT_AUTH_CACHE_TTL at most, and another replica (or a restart) takes them without a look-up', async () => {
    const keyFile = join(mkdtempSync(join(dir, 'keys-')), TOKEN_KEY_FILE);
    const first = await start(keyFile);
    const issued = await tokenRequest(first);
    expect(issued.statusCode, issued.body).toBe(200);
    expect(issued.json().expires_in).toBeLessThanOrEqual(60);
    const token = issued.json().token as string;
    const { exp, iat } = decodeJwt(token);
    expect(exp! - iat!).toBeLessThanOrEqual(60);
    expect((await pull(first, token)).statusCode).toBe(503);

    const other = await start(keyFile);
    expect((await pull(other, token)).statusCode).toBe(503);
    expect(other.logs.some((line) => String(line.msg).includes('does not let Layover look users up'))).toBe(false);
  });
});
