import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwtAuthenticator, type JwtOptions } from '../../../src/client-auth/authenticators/jwt.js';
import { OciError } from '../../../src/registry/oci-errors.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { type OidcIssuer, startOidcIssuer } from './oidc-issuer-process.js';

// JwtAuthenticator against test/fixtures/oidc-issuer.mjs over real HTTPS: discovery, JWKS, rotation,
// and the provider going away.
const AUDIENCE = 'layover.example';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

let dir: string;
let idp: OidcIssuer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'layover-jwt-'));
  idp = await startOidcIssuer(dir);
}, 60_000);
afterAll(async () => {
  await idp?.close();
  rmSync(dir, { recursive: true, force: true });
});

function authenticator(overrides: Partial<JwtOptions> = {}): { auth: JwtAuthenticator; lines: ReturnType<typeof captureLogger>['lines'] } {
  const { logger, lines } = captureLogger();
  const settings = { issuer: idp.issuer, jwksUrl: null, audience: AUDIENCE, userClaim: 'sub', groupsClaim: 'groups' };
  const auth = new JwtAuthenticator({ settings, logger: logger as Logger, dispatcher: idp.dispatcher, timeoutMs: 1_000, cooldownMs: 0, ...overrides });
  return { auth, lines };
}

const good = (claims: Record<string, unknown> = {}): Promise<string> => idp.sign({ claims: { sub: 'ci-job', aud: AUDIENCE, groups: ['builders', 'ci'], ...claims } });

describe('JwtAuthenticator', () => {
  it('accepts a token of the issuer for the audience, as Bearer and as the password of Basic with any user', async () => {
    const { auth } = authenticator();
    const token = await good();
    // With the JWT's expiry: tokens Layover issues for it end no later.
    const identity = { user: 'ci-job', groups: ['builders', 'ci'], expiresAt: decodeJwt(token).exp };
    expect(await auth.authenticate(`Bearer ${token}`)).toEqual(identity);
    expect(await auth.authenticate(basic('anything', token))).toEqual(identity);
    // Discovery once, then the key set; the second check used the cached keys.
    expect(idp.requests().filter((r) => r.path === '/.well-known/openid-configuration').length).toBeGreaterThanOrEqual(1);
  });

  it('takes the user and groups from the configured claims (a string of groups, a nested claim, none)', async () => {
    const { auth } = authenticator({ settings: { issuer: idp.issuer, jwksUrl: `${idp.issuer}/jwks`, audience: AUDIENCE, userClaim: 'preferred_username', groupsClaim: 'realm_access.roles' } });
    const nested = await good({ preferred_username: 'alice', realm_access: { roles: ['dev', 'ops'] } });
    expect(await auth.authenticate(`Bearer ${nested}`)).toMatchObject({ user: 'alice', groups: ['dev', 'ops'] });
    const { auth: spaced } = authenticator();
    expect(await spaced.authenticate(`Bearer ${await good({ groups: 'a b,c' })}`)).toMatchObject({ user: 'ci-job', groups: ['a', 'b', 'c'] });
    expect(await spaced.authenticate(`Bearer ${await good({ groups: undefined })}`)).toMatchObject({ user: 'ci-job', groups: [] });
    expect(await auth.authenticate(`Bearer ${await good()}`)).toBeNull(); // no preferred_username: no user
  });

  it('refuses a wrong audience, an expired token, another issuer and a token without exp, and logs why without the token', async () => {
    const { auth, lines } = authenticator();
    const now = Math.floor(Date.now() / 1000);
    const cases = {
      audience: await good({ aud: 'someone-else' }),
      expired: await good({ exp: now - 120, iat: now - 600 }),
      issuer: await good({ iss: 'https://other.example' }),
      notYet: await good({ nbf: now + 600 }),
      noExp: await idp.sign({ claims: { sub: 'ci-job', aud: AUDIENCE }, omit: ['exp'] }),
    };
    for (const [name, token] of Object.entries(cases)) expect(await auth.authenticate(`Bearer ${token}`), name).toBeNull();
    expect(await auth.authenticate(`Bearer ${await good({ exp: now - 10 })}`)).not.toBeNull(); // within the clock tolerance
    const reasons = lines.filter((l) => l.msg === 'JWT refused').map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining(['ERR_JWT_CLAIM_VALIDATION_FAILED', 'ERR_JWT_EXPIRED']));
    for (const token of Object.values(cases)) expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]);
  });

  it('refuses alg none and HS256 signed with the public key as the secret (algorithm confusion)', async () => {
    const { auth } = authenticator();
    const token = await good();
    const [header, payload] = token.split('.') as [string, string];
    const kid = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid: string }).kid;
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
    const jwks = await (await request(`${idp.issuer}/jwks`, { dispatcher: idp.dispatcher })).body.text();
    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${payload}`;
    const hs256 = `${hsInput}.${createHmac('sha256', jwks).update(hsInput).digest('base64url')}`;
    expect(await auth.authenticate(`Bearer ${token}`)).not.toBeNull();
    expect(await auth.authenticate(`Bearer ${none}`)).toBeNull();
    expect(await auth.authenticate(`Bearer ${hs256}`)).toBeNull();
    expect(await auth.authenticate(basic('x', none))).toBeNull();
  });

  it('refuses a token signed with a key the issuer does not publish; picks up a rotated key at once', async () => {
    const { auth } = authenticator();
    expect(await auth.authenticate(`Bearer ${await good()}`)).not.toBeNull();
    expect(await auth.authenticate(`Bearer ${await idp.sign({ claims: { sub: 'mallory', aud: AUDIENCE }, unpublished: true })}`)).toBeNull();
    await idp.rotate();
    const before = idp.requests().filter((r) => r.path === '/jwks').length;
    expect(await auth.authenticate(`Bearer ${await good()}`)).toMatchObject({ user: 'ci-job' });
    expect(idp.requests().filter((r) => r.path === '/jwks').length).toBe(before + 1);
  });

  it('asks the provider for unknown key ids no more often than the cooldown allows', async () => {
    const { auth } = authenticator({ cooldownMs: 60_000 });
    expect(await auth.authenticate(`Bearer ${await good()}`)).not.toBeNull();
    const before = idp.requests().filter((r) => r.path === '/jwks').length;
    for (let i = 0; i < 5; i++) {
      expect(await auth.authenticate(`Bearer ${await idp.sign({ claims: { sub: 'mallory', aud: AUDIENCE }, unpublished: true })}`)).toBeNull();
    }
    expect(idp.requests().filter((r) => r.path === '/jwks').length).toBe(before);
  });

  it('answers UNAVAILABLE, within the timeout, when the provider stalls', async () => {
    const { auth, lines } = authenticator({ timeoutMs: 500 });
    await idp.stall(true);
    try {
      const token = await good();
      const started = Date.now();
      const error = await auth.authenticate(`Bearer ${token}`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OciError);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(lines.some((l) => l.msg === 'OIDC discovery failed')).toBe(true);
      expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]);
    } finally {
      await idp.stall(false);
    }
  });

  it('answers UNAVAILABLE when the provider is down, and a token that is not a JWT is refused without asking', async () => {
    const { auth } = authenticator();
    const token = await good();
    const count = idp.requests().length;
    expect(await auth.authenticate('Bearer not-a-jwt')).toBeNull();
    expect(await auth.authenticate(basic('ci', 'a-password'))).toBeNull();
    expect(await auth.authenticate(undefined)).toBeNull();
    expect(idp.requests().length).toBe(count);
    await idp.stop();
    const error = await auth.authenticate(`Bearer ${token}`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNAVAILABLE' });
  });
});
