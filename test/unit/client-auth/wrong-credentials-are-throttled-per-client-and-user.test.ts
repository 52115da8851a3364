/**
 * Wrong passwords cost their sender time: past MAX_FAILURES different ones within a minute, a
 * client's sign-ins as that user are refused unchecked (429 with Retry-After) for BLOCK_MS. Other
 * clients, other users of the same address, requests without credentials and one password sent many
 * times go on as before. The checks counted are a real htpasswd file's (bcrypt).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HtpasswdAuthenticator } from '../../../src/client-auth/authenticators/htpasswd.js';
import { BLOCK_MS, MAX_FAILURES, MAX_SOURCE_FAILURES, SignInThrottle } from '../../../src/client-auth/sign-in-throttle.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function throttled(): Promise<{ auth: SignInThrottle; checks: () => number; advance: (ms: number) => void }> {
  const dir = await mkdtemp(join(tmpdir(), 'layover-throttle-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'htpasswd');
  await writeFile(file, `alice:${bcrypt.hashSync('right', 4)}\nbob:${bcrypt.hashSync('right', 4)}\n`);
  const inner = await HtpasswdAuthenticator.open({ file, logger: captureLogger().logger as Logger, rememberMs: 0, checkIntervalMs: 0 });
  let checks = 0;
  const counting = { authenticate: (a: string | undefined, s?: string) => (checks++, inner.authenticate(a, s)), stillValid: (u: string) => inner.stillValid(u) };
  let now = 1_000_000;
  return { auth: new SignInThrottle(counting, () => now), checks: () => checks, advance: (ms) => void (now += ms) };
}

describe('SignInThrottle', () => {
  it(`refuses a client's sign-ins as one user, unchecked, after ${MAX_FAILURES} wrong ones in a minute; only for a while`, async () => {
    const { auth, checks, advance } = await throttled();
    for (let i = 0; i < MAX_FAILURES; i++) expect(await auth.authenticate(basic('alice', `guess-${i}`), '203.0.113.9')).toBeNull();
    const checked = checks();
    // Even the right password: the guesser cannot tell a right guess while it waits.
    await expect(auth.authenticate(basic('alice', 'right'), '203.0.113.9')).rejects.toMatchObject({ code: 'TOOMANYREQUESTS', status: 429, headers: { 'retry-after': String(BLOCK_MS / 1000) } });
    expect(checks()).toBe(checked);
    // Another client, and another user of the same client, sign in as usual.
    expect(await auth.authenticate(basic('alice', 'right'), '198.51.100.7')).toMatchObject({ user: 'alice' });
    expect(await auth.authenticate(basic('bob', 'right'), '203.0.113.9')).toMatchObject({ user: 'bob' });
    // A request without credentials is no failure, nor refused.
    expect(await auth.authenticate(undefined, '203.0.113.9')).toBeNull();
    advance(BLOCK_MS);
    expect(await auth.authenticate(basic('alice', 'right'), '203.0.113.9')).toMatchObject({ user: 'alice' });
  });

  it('counts checks under way: guesses sent in parallel are held to the same number', async () => {
    const { auth, checks } = await throttled();
    const guesses = await Promise.all(Array.from({ length: 40 }, (_, i) => auth.authenticate(basic('alice', `guess-${i}`), '203.0.113.9').catch((e: unknown) => e)));
    expect(guesses.filter((g) => g === null)).toHaveLength(MAX_FAILURES);
    expect(checks()).toBe(MAX_FAILURES);
    // One user, however the name is written: a directory takes `Alice `, full-width letters or a soft hyphen for alice.
    for (const name of [' ALICE ', '\uff41\uff4c\uff49\uff43\uff45', 'al\u00adice']) {
      await expect(auth.authenticate(basic(name, 'right'), '203.0.113.9')).rejects.toMatchObject({ code: 'TOOMANYREQUESTS' });
    }
  });

  it(`refuses a client that sprays user names, past ${MAX_SOURCE_FAILURES} wrong pairs in a minute`, async () => {
    const { auth, advance } = await throttled();
    for (let i = 0; i < MAX_SOURCE_FAILURES; i++) expect(await auth.authenticate(basic(`user-${i}`, 'password'), '203.0.113.9')).toBeNull();
    await expect(auth.authenticate(basic('alice', 'right'), '203.0.113.9')).rejects.toMatchObject({ code: 'TOOMANYREQUESTS' });
    expect(await auth.authenticate(basic('alice', 'right'), '198.51.100.7')).toMatchObject({ user: 'alice' });
    advance(BLOCK_MS);
    expect(await auth.authenticate(basic('alice', 'right'), '203.0.113.9')).toMatchObject({ user: 'alice' });
  });

  it('leaves nothing behind for a check that could not be made: refused checks cannot push a block out of its table', async () => {
    // A stand-in for a full queue: checks for made-up names are refused (503) before they are made.
    const inner = {
      authenticate: async (authorization: string | undefined) => {
        const user = Buffer.from(authorization!.slice(6), 'base64').toString().split(':')[0]!;
        if (user.startsWith('spray-')) throw new Error('too many sign-ins are being checked');
        return null;
      },
      stillValid: async () => true,
    };
    const auth = new SignInThrottle(inner);
    for (let i = 0; i < MAX_FAILURES; i++) expect(await auth.authenticate(basic('alice', `guess-${i}`), '203.0.113.9')).toBeNull();
    // More refused checks than the table holds, each for a name of its own.
    for (let i = 0; i < 10_001; i++) await expect(auth.authenticate(basic(`spray-${i}`, 'x'), '203.0.113.9')).rejects.toThrow('too many');
    await expect(auth.authenticate(basic('alice', 'guess-next'), '203.0.113.9')).rejects.toMatchObject({ code: 'TOOMANYREQUESTS' });
  });

  it('counts one password once: a pull\'s requests at once, or a stale password sent again and again', async () => {
    const { auth, checks } = await throttled();
    // A first pull: many requests with the right password before its first check ends.
    const pull = await Promise.all(Array.from({ length: 30 }, () => auth.authenticate(basic('alice', 'right'), '203.0.113.9')));
    expect(pull.every((identity) => identity?.user === 'alice')).toBe(true);
    // A pod with a stale password: refused every time, but never blocked, nor its user's other pods there.
    for (let i = 0; i < 3 * MAX_FAILURES; i++) expect(await auth.authenticate(basic('bob', 'old-password'), '203.0.113.9')).toBeNull();
    await Promise.all(Array.from({ length: 30 }, () => auth.authenticate(basic('bob', 'old-password'), '203.0.113.9')));
    expect(await auth.authenticate(basic('bob', 'right'), '203.0.113.9')).toMatchObject({ user: 'bob' });
    expect(checks()).toBeGreaterThan(0);
  });

  it('leaves tokens alone: they cannot be guessed, and junk must not lock out the tokens of an address', async () => {
    const { auth, checks } = await throttled();
    for (let i = 0; i < 3 * MAX_FAILURES; i++) expect(await auth.authenticate(`Bearer junk-${i}`, '203.0.113.9')).toBeNull();
    expect(checks()).toBe(3 * MAX_FAILURES);
  });

  it('counts failures within a minute only, and forgets them after a success', async () => {
    const { auth, advance } = await throttled();
    for (let i = 0; i < MAX_FAILURES - 1; i++) await auth.authenticate(basic('alice', 'nope'), '203.0.113.9');
    advance(61_000);
    for (let i = 0; i < MAX_FAILURES - 1; i++) await auth.authenticate(basic('alice', 'nope'), '203.0.113.9');
    expect(await auth.authenticate(basic('alice', 'right'), '203.0.113.9')).toMatchObject({ user: 'alice' });
    for (let i = 0; i < MAX_FAILURES - 1; i++) await auth.authenticate(basic('alice', 'nope'), '203.0.113.9');
    expect(await auth.authenticate(basic('alice', 'right'), '203.0.113.9')).toMatchObject({ user: 'alice' });
  });
});
