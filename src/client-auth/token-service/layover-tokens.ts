import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose';
import type { ClientIdentity } from '../authenticator.js';
import { loadOrCreateTokenKey, type TokenKey } from './token-key.js';
import type { TokenAccess } from './token-scopes.js';

/** `iss` of every token Layover issues. */
export const LAYOVER_TOKEN_ISSUER = 'layover';
/** The token spec: "a token should never be returned with less than 60 seconds to live". */
const MIN_LIFETIME_S = 60;

export interface IssuedToken {
  readonly token: string;
  /** Seconds. */
  readonly expiresIn: number;
  readonly issuedAt: Date;
}

/**
 * The tokens of Layover's own token service: ES256 JWTs with `sub` (the user),
 * `groups`, `aud` (the registry name the client asked for), `exp`
 * (CLIENT_TOKEN_TTL) and the distribution spec's `access`. A registry request
 * that carries one is let in by the token alone (no credential check), but the
 * access policy is asked again for every request, so a rule removed takes
 * effect before the token expires.
 */
export class LayoverTokens {
  readonly #key: TokenKey;
  readonly #ttlS: number;

  constructor(key: TokenKey, ttlMs: number) {
    this.#key = key;
    this.#ttlS = Math.max(MIN_LIFETIME_S, Math.floor(ttlMs / 1000));
  }

  /** With the key kept in `dataDir` (./token-key.ts). */
  static async open(dataDir: string, ttlMs: number): Promise<LayoverTokens> {
    return new LayoverTokens(await loadOrCreateTokenKey(dataDir), ttlMs);
  }

  async issue(identity: ClientIdentity, audience: string, access: readonly TokenAccess[]): Promise<IssuedToken> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const iat = issuedAt.getTime() / 1000;
    const token = await new SignJWT({ groups: [...identity.groups], access: access.map((a) => ({ ...a, actions: [...a.actions] })) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.#key.kid })
      .setIssuer(LAYOVER_TOKEN_ISSUER)
      .setSubject(identity.user)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + this.#ttlS)
      .setJti(randomUUID())
      .sign(this.#key.privateKey);
    return { token, expiresIn: this.#ttlS, issuedAt };
  }

  /** True when `token` names Layover's key: it is then checked here and nowhere else. */
  isOurs(token: string): boolean {
    try {
      return decodeProtectedHeader(token).kid === this.#key.kid;
    } catch {
      return false;
    }
  }

  /** The identity in a valid, unexpired token for `audience`; null for anything else. */
  async verify(token: string, audience: string): Promise<ClientIdentity | null> {
    try {
      const { payload } = await jwtVerify(token, this.#key.publicKey, {
        issuer: LAYOVER_TOKEN_ISSUER,
        audience,
        algorithms: ['ES256'],
        requiredClaims: ['exp', 'sub'],
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') return null;
      return Object.freeze({ user: payload.sub, groups: Object.freeze(Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === 'string') : []) });
    } catch {
      return null;
    }
  }
}
