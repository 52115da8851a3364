import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LdapAuthenticator, type LdapSettings } from '../../../src/client-auth/authenticators/ldap.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { GROUPS, PEOPLE, SERVICE_DN, type Slapd, startSlapd } from '../../helpers/slapd.js';

// Regression: LDAP injection. The user name a client sends goes into LDAP_SEARCH_FILTER,
// LDAP_GROUP_FILTER and LDAP_USER_DN; unescaped, filter syntax in it would let a client log in
// under a name that is not its own, or make the group search match groups it is not in.
const ALICE = { uid: 'alice', password: 'alice-pw-91f0' };
const BOB = { uid: 'bob', password: 'bob-pw-0c3e' };
const SERVICE_PASSWORD = 'service-pw-b77a';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let dir: string;
let slapd: Slapd;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-ldap-injection-'));
  slapd = await startSlapd({
    users: [ALICE, BOB],
    groups: [
      { cn: 'admins', kind: 'posixGroup', members: ['alice'] },
      { cn: 'readers', kind: 'posixGroup', members: ['bob'] },
    ],
    servicePassword: SERVICE_PASSWORD,
    parentDir: dir,
  });
}, 60_000);
afterAll(async () => {
  await slapd?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function authenticator(mode: 'search' | 'direct'): Promise<LdapAuthenticator> {
  const settings: LdapSettings = {
    url: slapd.url,
    userDn: mode === 'direct' ? `uid={user},${PEOPLE}` : null,
    searchBase: mode === 'search' ? PEOPLE : null,
    searchFilter: '(uid={user})',
    bindDn: SERVICE_DN,
    bindPassword: new Secret(SERVICE_PASSWORD),
    groupBase: GROUPS,
    groupFilter: '(|(member={dn})(memberUid={user}))',
    startTls: false,
    ca: null,
  };
  const { logger } = captureLogger();
  return LdapAuthenticator.open({ settings, logger: logger as Logger, rememberMs: 0 });
}

describe('ldap-injection', () => {
  it('the baseline: bob is bob, in readers only', async () => {
    for (const mode of ['search', 'direct'] as const) {
      expect(await (await authenticator(mode)).authenticate(basic('bob', BOB.password))).toEqual({ user: 'bob', groups: ['readers'] });
    }
  });

  it('a wildcard in the user name does not find another entry (search filter)', async () => {
    const auth = await authenticator('search');
    // Unescaped, (uid=alic*) finds alice, and her password then logs in a user named "alic*".
    for (const user of ['alic*', '*', 'a*e', 'alic\\65']) expect(await auth.authenticate(basic(user, ALICE.password)), user).toBeNull();
  });

  it('filter syntax in the user name does not widen the group search', async () => {
    const auth = await authenticator('search');
    // Unescaped, the filters become (uid=bob)(memberUid=*)… and (|(member=…)(memberUid=bob)(memberUid=*)):
    // bob in every group, admins included.
    for (const user of ['bob)(memberUid=*', 'bob)(|(memberUid=*)', '*)(uid=bob']) {
      const identity = await auth.authenticate(basic(user, BOB.password)).catch((error: unknown) => error);
      expect(identity, user).toBeNull();
    }
  });

  it('DN syntax in the user name does not bind as another entry (user DN template)', async () => {
    const auth = await authenticator('direct');
    // Unescaped, `alic\65` is alice's DN (\65 is "e"), and "alic\65" a second name for her.
    for (const user of ['alic\\65', 'alice,ou=people', 'bob+uid=alice', 'alice\\', '#alice', 'alice\u0000']) {
      expect(await auth.authenticate(basic(user, ALICE.password)), JSON.stringify(user)).toBeNull();
    }
    // The service account lives outside ou=people: it cannot be reached from the template either.
    expect(await auth.authenticate(basic(`layover,ou=services,dc=example,dc=test`, SERVICE_PASSWORD))).toBeNull();
  });
});
