import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import bcrypt from 'bcryptjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Authenticator } from '../../../src/client-auth/authenticator.js';
import { HtpasswdAuthenticator, unknownUserHash } from '../../../src/client-auth/authenticators/htpasswd.js';
import { NoAuthenticator } from '../../../src/client-auth/authenticators/none.js';
import { StaticTokenAuthenticator } from '../../../src/client-auth/authenticators/static-tokens.js';
import { ConfigError } from '../../../src/config/config-error.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
/** A line as the real `htpasswd -B` writes it (cost 5 keeps the tests quick). */
const htpasswdLine = (user: string, password: string): string => execFileSync('htpasswd', ['-Bbn', '-C', '5', user, password], { encoding: 'utf8' }).trim();
const root = mkdtempSync(join(tmpdir(), 'layover-client-auth-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const tempDir = (): string => mkdtempSync(join(root, 'case-'));

interface Case {
  name: string;
  make(): Promise<Authenticator>;
  /** A header that authenticates as `user`. */
  good: string;
  user: string;
  /** Same user, wrong secret. */
  wrong: string;
}

async function htpasswdCase(): Promise<Case> {
  const file = join(tempDir(), 'htpasswd');
  writeFileSync(file, `${htpasswdLine('alice', 'pa:ss word')}\n${htpasswdLine('bob', 'other')}\n`);
  const { logger } = captureLogger();
  return { name: 'htpasswd', make: () => HtpasswdAuthenticator.open({ file, logger: logger as Logger }), good: basic('alice', 'pa:ss word'), user: 'alice', wrong: basic('alice', 'pa:ss wor') };
}

const tokensCase: Case = {
  name: 'static tokens',
  make: () => Promise.resolve(new StaticTokenAuthenticator([{ user: 'ci', token: new Secret('tok-0123456789abcdef'), groups: ['robots'] }])),
  good: 'Bearer tok-0123456789abcdef',
  user: 'ci',
  wrong: 'Bearer tok-0123456789abcdeg',
};

// One suite for every Authenticator that checks credentials.
describe.each([{ name: 'htpasswd' }, { name: 'static tokens' }])('Authenticator: $name', ({ name }) => {
  const setUp = async (): Promise<Case> => (name === 'htpasswd' ? htpasswdCase() : tokensCase);

  it('accepts the right credentials and names the user', async () => {
    const c = await setUp();
    const auth = await c.make();
    expect(await auth.authenticate(c.good)).toMatchObject({ user: c.user });
    expect(await auth.authenticate(c.good)).toMatchObject({ user: c.user }); // remembered or not, the same answer
  });

  it('refuses missing, wrong and malformed credentials with null', async () => {
    const c = await setUp();
    const auth = await c.make();
    for (const header of [undefined, '', c.wrong, 'Basic', 'Basic !!!', basic('nobody', 'x'), 'Digest abc', `${c.good}x`]) {
      expect(await auth.authenticate(header), String(header)).toBeNull();
    }
  });
});

describe('HtpasswdAuthenticator', () => {
  it('reads the file again when it changes: new users get in, removed ones no longer', async () => {
    const dir = tempDir();
    const file = join(dir, 'htpasswd');
    writeFileSync(file, `${htpasswdLine('alice', 'one')}\n`);
    const { logger, lines } = captureLogger();
    const auth = await HtpasswdAuthenticator.open({ file, logger: logger as Logger, checkIntervalMs: 0 });
    expect(await auth.authenticate(basic('alice', 'one'))).toMatchObject({ user: 'alice' });
    expect(await auth.authenticate(basic('carol', 'two'))).toBeNull();

    writeFileSync(file, `${htpasswdLine('carol', 'two')}\n`);
    utimesSync(file, new Date(), new Date(Date.now() + 5_000)); // a clear mtime change, whatever the clock granularity
    expect(await auth.authenticate(basic('carol', 'two'))).toMatchObject({ user: 'carol' });
    expect(await auth.authenticate(basic('alice', 'one'))).toBeNull(); // the remembered success went with the old file
    expect(lines.filter((l) => l.msg === 'read the htpasswd file').map((l) => l.users)).toEqual([1, 1]);
  });

  it('keeps the users it has when the file disappears, and says so', async () => {
    const file = join(tempDir(), 'htpasswd');
    writeFileSync(file, `${htpasswdLine('alice', 'one')}\n`);
    const { logger, lines } = captureLogger();
    const auth = await HtpasswdAuthenticator.open({ file, logger: logger as Logger, checkIntervalMs: 0 });
    const { rmSync } = await import('node:fs');
    rmSync(file);
    expect(await auth.authenticate(basic('alice', 'one'))).toMatchObject({ user: 'alice' });
    expect(lines.some((l) => l.msg.startsWith('cannot read the htpasswd file') && l.code === 'ENOENT')).toBe(true);
  });

  it('ignores lines that are not bcrypt, logging only their numbers', async () => {
    const file = join(tempDir(), 'htpasswd');
    writeFileSync(file, `# users\nplain:clear-text-password\n${htpasswdLine('alice', 'one')}\nmd5:${'$apr1$abc$def'}\n`);
    const { logger, lines } = captureLogger();
    const auth = await HtpasswdAuthenticator.open({ file, logger: logger as Logger });
    expect(await auth.authenticate(basic('plain', 'clear-text-password'))).toBeNull();
    expect(await auth.authenticate(basic('alice', 'one'))).toMatchObject({ user: 'alice' });
    expect(lines.find((l) => l.msg.startsWith('htpasswd lines that are not bcrypt'))).toMatchObject({ lines: [2, 4] });
    expect(JSON.stringify(lines)).not.toContain('clear-text-password');
  });

  it('compares passwords on a worker thread: the main thread (every pull, every hit) never runs bcrypt', async () => {
    const file = join(tempDir(), 'htpasswd');
    writeFileSync(file, `${htpasswdLine('alice', 'one')}\n`);
    const { logger } = captureLogger();
    const auth = await HtpasswdAuthenticator.open({ file, logger: logger as Logger });
    const here = [vi.spyOn(bcrypt, 'compare'), vi.spyOn(bcrypt, 'compareSync')];
    try {
      expect(await auth.authenticate(basic('alice', 'one'))).toMatchObject({ user: 'alice' });
      expect(await auth.authenticate(basic('alice', 'two'))).toBeNull();
      expect(await auth.authenticate(basic('nobody', 'one'))).toBeNull();
      for (const spy of here) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of here) spy.mockRestore();
    }
  });

  it('refuses at once (503) the checks beyond those the worker has waiting: a loop of new passwords queues nothing', async () => {
    const file = join(tempDir(), 'htpasswd');
    writeFileSync(file, `${htpasswdLine('alice', 'one')}\n`);
    const { logger } = captureLogger();
    const auth = await HtpasswdAuthenticator.open({ file, logger: logger as Logger });
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => auth.authenticate(basic('alice', `guess-${i}`))));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    expect(results.filter((r) => r.status === 'fulfilled').every((r) => (r as PromiseFulfilledResult<unknown>).value === null)).toBe(true);
    // The right password still gets in once the storm has passed.
    expect(await auth.authenticate(basic('alice', 'one'))).toMatchObject({ user: 'alice' });
  });

  it('checks an unknown user at the cost most users have, so that the time taken tells no names', () => {
    const at = (cost: string): string => `$2y$${cost}$${'a'.repeat(53)}`;
    expect(unknownUserHash([at('05'), at('05'), at('12')]).slice(0, 7)).toBe('$2b$05$');
    expect(unknownUserHash([at('12')]).slice(0, 7)).toBe('$2b$12$');
    expect(unknownUserHash([]).slice(0, 7)).toBe('$2b$10$');
    expect(bcrypt.compareSync('anything', unknownUserHash([at('04')]))).toBe(false);
  });

  it('fails the start with a ConfigError when the file cannot be read', async () => {
    const { logger } = captureLogger();
    const opening = HtpasswdAuthenticator.open({ file: join(tempDir(), 'missing'), logger: logger as Logger });
    await expect(opening).rejects.toBeInstanceOf(ConfigError);
    await expect(opening).rejects.toThrow(/HTPASSWD_FILE: cannot read .*missing \(ENOENT\)/);
  });
});

describe('StaticTokenAuthenticator', () => {
  const auth = new StaticTokenAuthenticator([
    { user: 'ci', token: new Secret('tok-0123456789abcdef'), groups: ['robots'] },
    { user: 'bob', token: new Secret('bob-0123456789abcdef'), groups: [] },
  ]);
  it('accepts a token as Bearer, or as the password of Basic for its own user (docker login)', async () => {
    expect(await auth.authenticate('Bearer bob-0123456789abcdef')).toEqual({ user: 'bob', groups: [] });
    expect(await auth.authenticate(basic('ci', 'tok-0123456789abcdef'))).toEqual({ user: 'ci', groups: ['robots'] });
    expect(await auth.authenticate(basic('bob', 'tok-0123456789abcdef'))).toBeNull();
  });
});

describe('NoAuthenticator', () => {
  it('lets everyone in as anonymous', async () => {
    expect(await new NoAuthenticator().authenticate(undefined)).toEqual({ user: 'anonymous', groups: [] });
  });
});
