import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { ClientIdentity, TokenLifetime } from '../authenticator.js';
import { loadOrCreateTokenKey, type TokenKey, type TokenKeyFileOptions } from './token-key.js';
import { parseAccessClaim, type TokenAccess } from './token-scopes.js';

/** How far apart the clocks of the replicas that issue and check one token may be. */
const CLOCK_TOLERANCE_S = 30;

/** `iss` of every token Layover issues. */
export const LAYOVER_TOKEN_ISSUER = 'layover';
/** The token spec: "a token should never be returned with less than 60 seconds to live". */
export const MIN_LIFETIME_S = 60;

/** A token of Layover's that checked out: who it is for and what it grants (its `access` claim). */
export interface VerifiedToken {
  readonly identity: ClientIdentity;
  readonly access: readonly TokenAccess[];
  readonly lifetime: TokenLifetime;
}

export interface IssuedToken {
  readonly token: string;
  /** Seconds. */
  readonly expiresIn: number;
  readonly issuedAt: Date;
}

/**
 * The tokens of Layover's own token service: ES256 JWTs with `sub` (the user),
 * `groups`, `aud` (the registry name the client asked for), `exp`
 * (CLIENT_TOKEN_TTL, or sooner when the credential it was issued for ends, as
 * a JWT does) and the distribution spec's `access`. A registry request that
 * carries one is let in for what its `access` lists only (the client-auth
 * hook), while its user is still known to the authenticator, and the access
 * policy is asked again for every request, so a rule removed takes effect
 * before the token expires.
 */
export class LayoverTokens {
  readonly #key: TokenKey;
  readonly #ttlS: number;

  constructor(key: TokenKey, ttlMs: number) {
    this.#key = key;
    this.#ttlS = Math.max(MIN_LIFETIME_S, Math.floor(ttlMs / 1000));
  }

  /** With the key kept in `keyFile` (./token-key.ts). */
  static async open(keyFile: string, ttlMs: number, options: TokenKeyFileOptions = { createIfMissing: true }): Promise<LayoverTokens> {
    return new LayoverTokens(await loadOrCreateTokenKey(keyFile, options), ttlMs);
  }

  async issue(identity: ClientIdentity, audience: string, access: readonly TokenAccess[]): Promise<IssuedToken> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const iat = issuedAt.getTime() / 1000;
    // Never outlive the credential it was exchanged for (a JWT with 45 s left buys 45 s).
    const exp = identity.expiresAt === undefined ? iat + this.#ttlS : Math.min(iat + this.#ttlS, Math.floor(identity.expiresAt));
    const token = await new SignJWT({ groups: [...identity.groups], access: access.map((a) => ({ ...a, actions: [...a.actions] })) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.#key.kid })
      .setIssuer(LAYOVER_TOKEN_ISSUER)
      .setSubject(identity.user)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(this.#key.privateKey);
    return { token, expiresIn: Math.max(0, exp - iat), issuedAt };
  }

  /** True when `token` names Layover's key: it is then checked here and nowhere else. */
  isOurs(token: string): boolean {
    try {
      return decodeProtectedHeader(token).kid === this.#key.kid;
    } catch {
      return false;
    }
  }

  /** The identity and grants of a valid, unexpired token for `audience`; null for anything else. */
  async verify(token: string, audience: string): Promise<VerifiedToken | null> {
    try {
      const { payload } = await jwtVerify(token, this.#key.publicKey, {
        issuer: LAYOVER_TOKEN_ISSUER,
        audience,
        algorithms: ['ES256'],
        requiredClaims: ['exp', 'iat', 'sub'],
        // Issued by another replica whose clock is ahead, a token is not yet valid here: its client
        // would go round on 401s. The clocks of a fleet differ by seconds. (jose applies the same
        // tolerance to `exp`: a token is taken up to 30 s past its end, its policy asked all the same.)
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      if (typeof payload.sub !== 'string' || payload.sub === '' || payload.exp === undefined || payload.iat === undefined) return null;
      const groups = Object.freeze(Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === 'string') : []);
      const lifetime = Object.freeze({ issuedAt: payload.iat, expiresAt: payload.exp });
      return Object.freeze({ identity: Object.freeze({ user: payload.sub, groups }), access: parseAccessClaim(payload.access), lifetime });
    } catch {
      return null;
    }
  }
}
