import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, decodeJwt } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../../src/client-auth/access-policy.js';
import { LAYOVER_TOKEN_ISSUER, LayoverTokens } from '../../../src/client-auth/token-service/layover-tokens.js';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { loadOrCreateTokenKey } from '../../../src/client-auth/token-service/token-key.js';
import { formatScopes, grantAccess, parseScopes } from '../../../src/client-auth/token-service/token-scopes.js';
import { ConfigError } from '../../../src/config/config-error.js';

const root = mkdtempSync(join(tmpdir(), 'layover-token-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const tempDir = (): string => mkdtempSync(join(root, 'case-'));
/** The key file in a new temp dir, as Layover's default puts it in the data dir. */
const keyFile = (dir = tempDir()): string => join(dir, TOKEN_KEY_FILE);
const alice = { user: 'alice', groups: ['dev'] };

describe('the token key', () => {
  it('is made once, mode 0600, and read again after that', async () => {
    const dir = join(tempDir(), 'data');
    const first = await loadOrCreateTokenKey(keyFile(dir));
    const file = join(dir, TOKEN_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pem = readFileSync(file, 'utf8');
    const again = await loadOrCreateTokenKey(keyFile(dir));
    expect(again.kid).toBe(first.kid);
    expect(readFileSync(file, 'utf8')).toBe(pem);
  });

  it('two starts at once end up with one key', async () => {
    const dir = tempDir();
    const keys = await Promise.all([loadOrCreateTokenKey(keyFile(dir)), loadOrCreateTokenKey(keyFile(dir)), loadOrCreateTokenKey(keyFile(dir))]);
    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
  });

  it('a file that is not an EC P-256 key stops the start with a ConfigError', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, TOKEN_KEY_FILE), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await expect(loadOrCreateTokenKey(keyFile(dir))).rejects.toBeInstanceOf(ConfigError);
    writeFileSync(join(dir, TOKEN_KEY_FILE), 'garbage');
    await expect(loadOrCreateTokenKey(keyFile(dir))).rejects.toThrow(/not a PEM private key/);
  });
});

describe('LayoverTokens', () => {
  it('issues a token for the audience that verifies back to the identity, with the claims of the spec', async () => {
    const tokens = await LayoverTokens.open(keyFile(), 15 * 60_000);
    const access = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
    const issued = await tokens.issue(alice, 'ghcr.io', access);
    expect(issued.expiresIn).toBe(900);
    const claims = decodeJwt(issued.token);
    expect(claims).toMatchObject({ iss: LAYOVER_TOKEN_ISSUER, sub: 'alice', aud: 'ghcr.io', groups: ['dev'], access });
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(tokens.isOurs(issued.token)).toBe(true);
    expect(await tokens.verify(issued.token, 'ghcr.io')).toEqual({ identity: alice, access, lifetime: { issuedAt: claims.iat, expiresAt: claims.exp } });
  });

  it('never outlives the credential it was issued for: a JWT with 45 s left buys at most 45 s', async () => {
    const tokens = await LayoverTokens.open(keyFile(), 15 * 60_000);
    const expiresAt = Math.floor(Date.now() / 1000) + 45;
    const issued = await tokens.issue({ ...alice, expiresAt }, 'ghcr.io', []);
    const claims = decodeJwt(issued.token);
    expect(claims.exp).toBeLessThanOrEqual(expiresAt);
    expect(issued.expiresIn).toBeLessThanOrEqual(45);
    // A credential that outlives CLIENT_TOKEN_TTL does not lengthen the token.
    const long = decodeJwt((await tokens.issue({ ...alice, expiresAt: expiresAt + 86_400 }, 'ghcr.io', [])).token);
    expect(long.exp! - long.iat!).toBe(900);
  });

  it('refuses another audience, an expired token, another key and a tampered token', async () => {
    const dir = tempDir();
    const tokens = await LayoverTokens.open(keyFile(dir), 60_000);
    const { token } = await tokens.issue(alice, 'ghcr.io', []);
    expect(await tokens.verify(token, 'quay.io')).toBeNull();
    const other = await LayoverTokens.open(keyFile(), 60_000);
    expect(other.isOurs(token)).toBe(false);
    expect(await other.verify(token, 'ghcr.io')).toBeNull();
    const [h, p, s] = token.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...decodeJwt(token), sub: 'admin' })).toString('base64url');
    expect(await tokens.verify(`${h}.${forged}.${s}`, 'ghcr.io')).toBeNull();
    expect(await tokens.verify(`${h}.${p}.`, 'ghcr.io')).toBeNull();
    const key = await loadOrCreateTokenKey(keyFile(dir));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ groups: [] })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(LAYOVER_TOKEN_ISSUER)
      .setSubject('alice')
      .setAudience('ghcr.io')
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(key.privateKey);
    expect(tokens.isOurs(expired)).toBe(true);
    expect(await tokens.verify(expired, 'ghcr.io')).toBeNull();
  });

  it('takes a token another replica issued with its clock a little ahead (not yet valid by this one\'s)', async () => {
    const dir = tempDir();
    const tokens = await LayoverTokens.open(keyFile(dir), 60_000);
    const key = await loadOrCreateTokenKey(keyFile(dir));
    const ahead = Math.floor(Date.now() / 1000) + 10;
    const token = await new SignJWT({ groups: [] })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setIssuer(LAYOVER_TOKEN_ISSUER)
      .setSubject('alice')
      .setAudience('ghcr.io')
      .setIssuedAt(ahead)
      .setNotBefore(ahead)
      .setExpirationTime(ahead + 600)
      .sign(key.privateKey);
    expect(await tokens.verify(token, 'ghcr.io')).toMatchObject({ identity: { user: 'alice' } });
  });

  it('never issues a token with less than 60 seconds to live', async () => {
    const tokens = await LayoverTokens.open(keyFile(), 5_000);
    expect((await tokens.issue(alice, 'ghcr.io', [])).expiresIn).toBe(60);
  });

  it('isOurs is false for anything that is not a JWT', async () => {
    const tokens = await LayoverTokens.open(keyFile(), 60_000);
    for (const value of ['', 'abc', 'a.b.c', 'tok-0123456789abcdef']) expect(tokens.isOurs(value)).toBe(false);
  });
});

describe('token scopes', () => {
  it('parses repeated and space-separated scopes; the name is what lies between the first and last colon', () => {
    expect(parseScopes(['repository:team/app:pull,push', 'repository:a/b:pull registry:catalog:*', 'repository:host:5000/x:pull', 'nonsense', ''])).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'a/b', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'host:5000/x', actions: ['pull'] },
    ]);
  });

  it('grants what the policy allows and drops the rest (push only with ALLOW_PUSH)', () => {
    const policy = new AccessPolicy([
      { groups: ['dev'], repositories: ['team/**'], actions: ['pull', 'push'] },
      { users: ['alice'], actions: ['pull'] },
    ]);
    const requested = parseScopes(['repository:team/app:pull,push,delete', 'repository:other/x:push', 'repository:other/x:pull', 'repository:Bad Name:pull', 'registry:catalog:*']);
    const ghcr = { repository: (name: string) => ({ registry: 'ghcr.io', repository: name }), catalog: 'ghcr.io' };
    const granted = grantAccess(policy, alice, ghcr, requested, true);
    expect(granted).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'other/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    expect(formatScopes(granted)).toBe('repository:team/app:pull,push repository:other/x:pull registry:catalog:*');
    expect(grantAccess(policy, alice, ghcr, requested, false)[0]).toEqual({ type: 'repository', name: 'team/app', actions: ['pull'] });
    expect(grantAccess(policy, { user: 'bob', groups: [] }, ghcr, requested, true)).toEqual([]);
  });

  it('judges each name where the token service says it lives, keeps the client names, and drops names of no registry', () => {
    const policy = new AccessPolicy([{ users: ['alice'], registries: ['registry.test'], repositories: ['bench/**'], actions: ['pull'] }]);
    // A mirror path's names: the registry prefix is the registry the policy judges.
    const mirror = { repository: (name: string) => (name.startsWith('registry.test/') ? { registry: 'registry.test', repository: name.slice('registry.test/'.length) } : null), catalog: null };
    const requested = parseScopes(['repository:registry.test/bench/oci:pull', 'repository:registry.test/other:pull', 'repository:bench/oci:pull', 'registry:catalog:*']);
    expect(grantAccess(policy, alice, mirror, requested, false)).toEqual([{ type: 'repository', name: 'registry.test/bench/oci', actions: ['pull'] }]);
  });
});
