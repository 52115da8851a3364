import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PEOPLE, type Slapd, startSlapd } from '../../helpers/slapd.js';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

// CLIENT_AUTH=ldap with CLIENT_AUTH_CHALLENGE=bearer and no LDAP_BIND_DN, against Debian's real slapd
// (test/helpers/slapd.ts: anonymous clients may bind but not read entries). A token of Layover's is
// re-checked by looking its user up; a lookup the directory refuses used to count as "still there",
// so a token outlived the user's removal. It is refused now, unless a bind as that user proved the
// entry within CLIENT_AUTH_CACHE_TTL. The upstream resolver is a closed port: a request past the
// client-auth hook ends in 503 UNAVAILABLE, one refused by it in 401.
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

/** A Layover without LDAP_BIND_DN; every one started on `dataDir` signs with the same token key. */
async function start(dataDir: string): Promise<RunningLayover> {
  const layover = await startLayover(
    { 'data-dir': dataDir, registries: 'ghcr.io' },
    { CLIENT_AUTH: 'ldap', CLIENT_AUTH_CHALLENGE: 'bearer', LDAP_URL: slapd.url, LDAP_USER_DN: `uid={user},${PEOPLE}` },
  );
  running.push(layover);
  return layover;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const pull = (layover: RunningLayover, token: string) =>
  layover.app.https.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { host: 'ghcr.io', authorization: `Bearer ${token}` } });

describe('LDAP without LDAP_BIND_DN: a token whose user the directory does not confirm', () => {
  it('is refused by a Layover that did not itself see the user bind (a restart), not kept until it expires', async () => {
    const dataDir = join(dir, `data-${Date.now()}`);
    const first = await start(dataDir);
    const issued = await first.app.https.inject({
      method: 'GET',
      url: '/token?service=ghcr.io&scope=repository%3Ateam%2Fapp%3Apull',
      headers: { host: 'docker.proxy', authorization: basic(ALICE.uid, ALICE.password) },
    });
    expect(issued.statusCode, issued.body).toBe(200);
    const token = issued.json().token as string;
    // Right after the bind as alice, that bind vouches for her entry.
    expect((await pull(first, token)).statusCode).toBe(503);

    await first.close();
    running.splice(running.indexOf(first), 1);
    const restarted = await start(dataDir);
    const refused = await pull(restarted, token);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().errors[0].code).toBe('UNAUTHORIZED');
    expect(restarted.logs.some((line) => line.level === 40 && String(line.msg).includes('does not let Layover look users up'))).toBe(true);
    // Her password still works: she logs in again and the new bind vouches for her.
    const again = await restarted.app.https.inject({
      method: 'GET',
      url: '/token?service=ghcr.io&scope=repository%3Ateam%2Fapp%3Apull',
      headers: { host: 'docker.proxy', authorization: basic(ALICE.uid, ALICE.password) },
    });
    expect((await pull(restarted, again.json().token as string)).statusCode).toBe(503);
    // Told at start, and once more when the directory refused the lookup.
    expect(restarted.logs.filter((line) => line.level === 40 && String(line.msg).includes('without LDAP_BIND_DN'))).toHaveLength(1);
  });
});
