import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LdapAuthenticator } from '../../../src/client-auth/authenticators/ldap.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { GROUPS, PEOPLE, SERVICE_DN, type Slapd, startSlapd } from '../../helpers/slapd.js';

// Regression: LDAP unauthenticated bind. To LDAP a DN with an empty password is an
// "unauthenticated bind" (RFC 4513 5.1.2); a server that allows it (slapd's `allow bind_anon_dn`,
// older Active Directory setups) answers success for any DN, existing or not. Layover must never
// take that success for a checked password.
const SERVICE_PASSWORD = 'service-pw-1d8c';

let dir: string;
let slapd: Slapd;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-ldap-unauth-'));
  slapd = await startSlapd({
    users: [{ uid: 'alice', password: 'alice-pw-66e2' }],
    groups: [{ cn: 'admins', kind: 'groupOfNames', members: ['alice'] }],
    servicePassword: SERVICE_PASSWORD,
    allowUnauthenticatedBind: true,
    parentDir: dir,
  });
}, 60_000);
afterAll(async () => {
  await slapd?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function authenticator(mode: 'direct' | 'search'): Promise<LdapAuthenticator> {
  const { logger } = captureLogger();
  return LdapAuthenticator.open({
    settings: {
      url: slapd.url,
      userDn: mode === 'direct' ? `uid={user},${PEOPLE}` : null,
      searchBase: mode === 'search' ? PEOPLE : null,
      searchFilter: '(uid={user})',
      bindDn: SERVICE_DN,
      bindPassword: new Secret(SERVICE_PASSWORD),
      groupBase: GROUPS,
      groupFilter: '(member={dn})',
      startTls: false,
      ca: null,
    },
    logger: logger as Logger,
    rememberMs: 60_000,
  });
}

describe('ldap-unauthenticated-bind', () => {
  it('the danger is real: this slapd lets any DN bind with an empty password', async () => {
    const client = new Client({ url: slapd.url, timeout: 5_000 });
    try {
      await client.bind(slapd.userDn('alice'), '');
      await client.bind(slapd.userDn('nobody-at-all'), '');
    } finally {
      await client.unbind();
    }
  });

  it('Layover refuses an empty password before asking the directory, for known and unknown users', async () => {
    for (const mode of ['direct', 'search'] as const) {
      const auth = await authenticator(mode);
      for (const user of ['alice', 'nobody-at-all']) {
        expect(await auth.check(user, ''), `${mode} ${user}`).toBeNull();
        expect(await auth.authenticate(`Basic ${Buffer.from(`${user}:`).toString('base64')}`)).toBeNull();
      }
      expect(await auth.check('alice', 'alice-pw-66e2')).toMatchObject({ user: 'alice', groups: ['admins'] });
    }
  });
});
