import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LdapAuthenticator, type LdapSettings, MAX_LDAP_CONNECTIONS, MAX_LDAP_WAITING } from '../../../src/client-auth/authenticators/ldap.js';
import { OciError } from '../../../src/registry/oci-errors.js';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { GROUPS, PEOPLE, SERVICE_DN, type Slapd, startSlapd } from '../../helpers/slapd.js';
import { Secret } from '../../../src/config/secret.js';

// LdapAuthenticator against Debian's real slapd (test/helpers/slapd.ts).
const SERVICE_PASSWORD = 'service-pw-5e1f';
const USERS = [
  { uid: 'alice', password: 'alice-pw-0a9b' },
  { uid: 'bob', password: 'bob-pw-77c1' },
  { uid: 'doe, jane', password: 'jane-pw-3d2e' },
];
const GROUP_FILTER = '(|(member={dn})(uniqueMember={dn})(memberUid={user}))';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let dir: string;
let ca: TestCa;
let slapd: Slapd;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-ldap-'));
  ca = await createTestCa(join(dir, 'ca'));
  slapd = await startSlapd({
    users: USERS,
    groups: [
      { cn: 'developers', kind: 'groupOfNames', members: ['alice', 'doe, jane'] },
      { cn: 'deployers', kind: 'posixGroup', members: ['alice'] },
      { cn: 'auditors', kind: 'posixGroup', members: ['bob'] },
    ],
    servicePassword: SERVICE_PASSWORD,
    ca,
    parentDir: dir,
  });
}, 60_000);
afterAll(async () => {
  await slapd?.close();
  rmSync(dir, { recursive: true, force: true });
});

function settings(overrides: Partial<LdapSettings> = {}): LdapSettings {
  return {
    url: slapd.url,
    userDn: `uid={user},${PEOPLE}`,
    searchBase: null,
    searchFilter: '(uid={user})',
    bindDn: null,
    bindPassword: null,
    groupBase: GROUPS,
    groupFilter: GROUP_FILTER,
    startTls: false,
    ca: null,
    ...overrides,
  };
}

const searching = (overrides: Partial<LdapSettings> = {}): LdapSettings =>
  settings({ userDn: null, searchBase: PEOPLE, bindDn: SERVICE_DN, bindPassword: new Secret(SERVICE_PASSWORD), ...overrides });

async function open(s: LdapSettings, timeoutMs?: number): Promise<{ auth: LdapAuthenticator; lines: ReturnType<typeof captureLogger>['lines'] }> {
  const { logger, lines } = captureLogger();
  const auth = await LdapAuthenticator.open({ settings: s, logger: logger as Logger, rememberMs: 60_000, ...(timeoutMs ? { timeoutMs } : {}) });
  return { auth, lines };
}

describe('LdapAuthenticator: direct bind (LDAP_USER_DN)', () => {
  it('accepts the right password and reads groups of both kinds', async () => {
    const { auth } = await open(settings());
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toEqual({ user: 'alice', groups: expect.arrayContaining(['developers', 'deployers']) });
    expect((await auth.authenticate(basic('bob', 'bob-pw-77c1')))?.groups).toEqual(['auditors']);
  });

  it('refuses a wrong password, an unknown user and anything but Basic with null', async () => {
    const { auth, lines } = await open(settings());
    expect(await auth.authenticate(basic('alice', 'bob-pw-77c1'))).toBeNull();
    expect(await auth.authenticate(basic('nobody', 'alice-pw-0a9b'))).toBeNull();
    expect(await auth.authenticate('Bearer alice-pw-0a9b')).toBeNull();
    expect(await auth.authenticate(undefined)).toBeNull();
    expect(lines.filter((l) => l.msg === 'LDAP: the bind as the user was refused').map((l) => l.ldapResult)).toEqual([49, 49]);
    expect(JSON.stringify(lines)).not.toContain('pw-');
  });

  it('logs in a user whose name has to be escaped in a DN', async () => {
    const { auth } = await open(settings());
    expect(await auth.authenticate(basic('doe, jane', 'jane-pw-3d2e'))).toEqual({ user: 'doe, jane', groups: ['developers'] });
  });

  it('reads no groups without LDAP_GROUP_BASE', async () => {
    const { auth } = await open(settings({ groupBase: null }));
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toEqual({ user: 'alice', groups: [] });
  });
});

describe('LdapAuthenticator: search, then bind (LDAP_SEARCH_BASE)', () => {
  it('finds the user as the service account, then binds as the user', async () => {
    const { auth } = await open(searching());
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toEqual({ user: 'alice', groups: expect.arrayContaining(['developers', 'deployers']) });
    expect(await auth.authenticate(basic('alice', 'wrong'))).toBeNull();
    expect(await auth.authenticate(basic('nobody', 'wrong'))).toBeNull();
  });

  it('searches anonymously without LDAP_BIND_DN: refused by this directory, that is 503 and a warning, not a 401', async () => {
    const { auth, lines } = await open(searching({ bindDn: null, bindPassword: null }));
    await expect(auth.authenticate(basic('alice', 'alice-pw-0a9b'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(lines.find((l) => l.level === 40 && String(l.msg).includes('(user search)'))).toMatchObject({ err: { code: 50 } });
  });

  it('a search that does not find exactly one entry is a 401', async () => {
    const { auth, lines } = await open(searching({ searchFilter: '(objectClass=inetOrgPerson)' }));
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toBeNull();
    expect(lines.some((l) => l.msg === 'LDAP: the user search did not find exactly one entry' && l.entries === 2)).toBe(true);
  });

  it('a wrong service password is the directory failing (503), not the client (401)', async () => {
    const { auth } = await open(searching({ bindPassword: new Secret('not-the-service-password') }));
    await expect(auth.authenticate(basic('alice', 'alice-pw-0a9b'))).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
  });
});

describe('LdapAuthenticator: TLS', () => {
  it('ldaps:// with LDAP_CA', async () => {
    const { auth } = await open(settings({ url: slapd.ldapsUrl!, ca: ca.certFile }));
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toMatchObject({ user: 'alice' });
  });

  it('StartTLS with LDAP_CA', async () => {
    const { auth, lines } = await open(settings({ startTls: true, ca: ca.certFile }));
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toMatchObject({ user: 'alice' });
    expect(lines.some((l) => String(l.msg).startsWith('LDAP without TLS'))).toBe(false);
  });

  it('an untrusted certificate is 503 UNAVAILABLE, for ldaps:// and StartTLS alike', async () => {
    for (const s of [settings({ url: slapd.ldapsUrl! }), settings({ startTls: true })]) {
      const { auth } = await open(s);
      await expect(auth.authenticate(basic('alice', 'alice-pw-0a9b'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    }
  });

  it('warns at start when passwords would cross the network in clear text', async () => {
    const { lines } = await open(settings());
    expect(lines.some((l) => l.level === 40 && String(l.msg).startsWith('LDAP without TLS'))).toBe(true);
  });
});

describe('LdapAuthenticator: a directory that is down or silent', () => {
  it('answers 503 UNAVAILABLE within the timeout when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => void sockets.add(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as { port: number };
      const { auth } = await open(settings({ url: `ldap://127.0.0.1:${port}` }), 500);
      const started = Date.now();
      const error = await auth.authenticate(basic('alice', 'alice-pw-0a9b')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OciError);
      expect(error).toMatchObject({ code: 'UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it(`opens at most ${MAX_LDAP_CONNECTIONS} directory connections at once; past ${MAX_LDAP_WAITING} waiting, a check is 503 at once, but another client still gets a turn`, async () => {
    let connected = 0;
    let most = 0;
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      most = Math.max(most, ++connected);
      socket.once('close', () => connected--);
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as { port: number };
      const { auth } = await open(settings({ url: `ldap://127.0.0.1:${port}` }), 700);
      const total = MAX_LDAP_CONNECTIONS + MAX_LDAP_WAITING + 20;
      const started = Date.now();
      const ended: number[] = [];
      const checks = Array.from({ length: total }, (_, i) =>
        auth.authenticate(basic(`user-${i}`, `guess-${i}`), '203.0.113.9').then(
          () => 'answered',
          (e: unknown) => (ended.push(Date.now() - started), (e as OciError).code),
        ),
      );
      // A client of its own behind that flood: a waiting check of the flood's makes room for it.
      const other = auth.authenticate(basic('alice', 'alice-pw-0a9b'), '198.51.100.7').then(
        () => null,
        (e: unknown) => ({ ms: Date.now() - started, message: (e as Error).message }),
      );
      const results = await Promise.all(checks);
      expect(results.every((code) => code === 'UNAVAILABLE')).toBe(true);
      expect(most).toBe(MAX_LDAP_CONNECTIONS);
      // The ones past the queue at once (20, and one more given up for the other client); the queue's within its own timeout.
      expect(ended.filter((ms) => ms < 300)).toHaveLength(21);
      expect(Math.max(...ended)).toBeLessThan(3_000);
      // It waited for its turn (the silent directory then let it down too), not refused at once.
      const refused = await other;
      expect(refused!.ms).toBeGreaterThan(500);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('looks a token\'s user up once for the requests that ask at once', async () => {
    let connections = 0;
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      connections++;
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const { port } = silent.address() as { port: number };
      const { auth } = await open(settings({ url: `ldap://127.0.0.1:${port}`, bindDn: SERVICE_DN, bindPassword: new Secret(SERVICE_PASSWORD) }), 500);
      const answers = await Promise.all(Array.from({ length: 20 }, () => auth.stillValid('alice').catch((e: unknown) => (e as OciError).code)));
      expect(answers.every((answer) => answer === 'UNAVAILABLE')).toBe(true);
      expect(connections).toBe(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('remembers a success for CLIENT_AUTH_CACHE_TTL (so a directory outage spares known clients) and answers new ones 503', async () => {
    const { auth } = await open(settings());
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toMatchObject({ user: 'alice' });
    await slapd.stop();
    try {
      expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toMatchObject({ user: 'alice' });
      const started = Date.now();
      await expect(auth.authenticate(basic('bob', 'bob-pw-77c1'))).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
      // A wrong password is not remembered: it cannot be told from a right one while the directory is down.
      await expect(auth.authenticate(basic('alice', 'wrong'))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await slapd.start();
    }
    expect(await auth.authenticate(basic('bob', 'bob-pw-77c1'))).toMatchObject({ user: 'bob' });
  });
});

describe('LdapAuthenticator: stillValid (a token of Layover’s is good while its user is)', () => {
  it('finds the entry by LDAP_USER_DN as LDAP_BIND_DN, and no more once it is gone', async () => {
    const { auth } = await open(settings({ bindDn: SERVICE_DN, bindPassword: new Secret(SERVICE_PASSWORD) }));
    expect(await auth.stillValid('alice')).toBe(true);
    expect(await auth.stillValid('ghost')).toBe(false);
  });

  it('without LDAP_BIND_DN, where the directory lets nobody read entries anonymously: confirms nobody, says so once', async () => {
    const { auth, lines } = await open(settings());
    expect(await auth.stillValid('alice')).toBe(false);
    expect(await auth.stillValid('bob')).toBe(false);
    expect(await auth.stillValid('ghost')).toBe(false);
    expect(lines.filter((l) => String(l.msg).includes('does not let Layover look users up'))).toHaveLength(1);
  });

  it('without LDAP_BIND_DN, a bind as the user vouches for the entry for CLIENT_AUTH_CACHE_TTL', async () => {
    const { auth, lines } = await open(settings());
    expect(lines.filter((l) => l.level === 40 && String(l.msg).includes('without LDAP_BIND_DN'))).toHaveLength(1);
    expect(await auth.authenticate(basic('alice', 'alice-pw-0a9b'))).toMatchObject({ user: 'alice' });
    expect(await auth.stillValid('alice')).toBe(true);
    expect(await auth.stillValid('bob')).toBe(false);
  });

  it('without LDAP_BIND_DN, a token no longer than CLIENT_AUTH_CACHE_TTL needs no look-up; with it, every token is looked up', async () => {
    const now = Math.floor(Date.now() / 1000);
    const { auth: blind } = await open(settings());
    expect(await blind.stillValid('bob', { issuedAt: now, expiresAt: now + 60 })).toBe(true);
    expect(await blind.stillValid('bob', { issuedAt: now, expiresAt: now + 900 })).toBe(false);
    const { auth: service } = await open(settings({ bindDn: SERVICE_DN, bindPassword: new Secret(SERVICE_PASSWORD) }));
    expect(await service.stillValid('ghost', { issuedAt: now, expiresAt: now + 60 })).toBe(false);
  });

  it('asks the search, so a filter that leaves an account out disables it', async () => {
    const { auth } = await open(searching());
    expect(await auth.stillValid('bob')).toBe(true);
    const { auth: filtered } = await open(searching({ searchFilter: '(&(uid={user})(!(uid=bob)))' }));
    expect(await filtered.stillValid('bob')).toBe(false);
    expect(await filtered.stillValid('alice')).toBe(true);
  });

  it('is 503 UNAVAILABLE, not a refusal, while the directory is down', async () => {
    const { auth } = await open(settings({ url: 'ldap://127.0.0.1:9' }), 2000);
    await expect(auth.stillValid('alice')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
