import { decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { LayoverConfig } from '../../config/layover-config.js';
import { OciError } from '../../registry/oci-errors.js';
import type { Authenticator, ClientIdentity } from '../authenticator.js';
import { parseBasic, parseBearer } from '../authenticator.js';
import { IssuerKeys } from './issuer-keys.js';

export type JwtSettings = NonNullable<LayoverConfig['clientAuth']['jwt']>;

/**
 * Asymmetric signatures only: with `none` anyone could write a token, and with
 * HS* the public key the provider publishes would do as the HMAC secret.
 */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Clocks of Layover and the provider may differ this much. */
const CLOCK_TOLERANCE_S = 30;
const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_COOLDOWN_MS = 30_000;
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface JwtOptions {
  settings: JwtSettings;
  logger: Logger;
  dispatcher?: Dispatcher;
  /** Bound of one fetch from the provider (discovery, JWKS). */
  timeoutMs?: number;
  /** How long after a JWKS fetch an unknown `kid` waits for the next one. */
  cooldownMs?: number;
}

/** A claim by name, or by a dotted path into nested objects (Keycloak's `realm_access.roles`). */
function claim(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  let value: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** A list of strings, or one string of names separated by spaces or commas; anything else is no groups. */
export function groupsFromClaim(value: unknown): string[] {
  const names = Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  return [...new Set(names.map((n) => n.trim()).filter((n) => n !== ''))];
}

/**
 * `CLIENT_AUTH=jwt`: a JWT from an OIDC provider (a CI job's ID token, say),
 * sent as `Bearer <jwt>` or, because that is what `docker login` and skopeo
 * `--creds` can carry, as the password of Basic with any user name. The token
 * must be signed by a key of JWT_ISSUER's key set (./issuer-keys.ts) with an
 * asymmetric algorithm, name JWT_ISSUER as `iss` and JWT_AUDIENCE among `aud`,
 * and carry an `exp` not passed (`nbf` not to come), give or take 30 seconds.
 * The user is the claim JWT_USER_CLAIM (`sub`), the groups JWT_GROUPS_CLAIM.
 *
 * A bad token resolves null (401); a provider that cannot be asked rejects with
 * OciError UNAVAILABLE (503). Why a token was refused is logged at debug level,
 * without the token.
 */
export class JwtAuthenticator implements Authenticator {
  readonly #settings: JwtSettings;
  readonly #logger: Logger;
  readonly #keys: IssuerKeys;

  constructor(options: JwtOptions) {
    this.#settings = options.settings;
    this.#logger = options.logger;
    this.#keys = new IssuerKeys({
      issuer: options.settings.issuer,
      jwksUrl: options.settings.jwksUrl,
      logger: options.logger,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      cooldownMs: options.cooldownMs ?? DEFAULT_COOLDOWN_MS,
    });
  }

  async authenticate(authorization: string | undefined): Promise<ClientIdentity | null> {
    const token = parseBearer(authorization) ?? parseBasic(authorization)?.password ?? null;
    if (token === null || !COMPACT_JWT.test(token)) return null;
    const { issuer, audience, userClaim, groupsClaim } = this.#settings;
    try {
      // Another issuer's token is refused without asking the provider for keys.
      if (decodeJwt(token).iss !== issuer) return this.#refused('ERR_JWT_CLAIM_VALIDATION_FAILED', 'iss');
      const { payload } = await jwtVerify(token, this.#keys.getKey, {
        issuer,
        audience,
        algorithms: JWT_ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['exp'],
      });
      const user = claim(payload, userClaim);
      if (typeof user !== 'string' || user === '') return this.#refused('no-user-claim', userClaim);
      return Object.freeze({ user, groups: Object.freeze(groupsFromClaim(claim(payload, groupsClaim))), expiresAt: payload.exp! });
    } catch (error) {
      if (error instanceof OciError) throw error;
      if (error instanceof errors.JOSEError) return this.#refused(error.code, (error as { claim?: string }).claim);
      // jose raises TypeError for a key that does not fit the algorithm: the token's doing too.
      return this.#refused('invalid', undefined);
    }
  }

  /** A JWT is checked only when presented; tokens issued for one end when it does (ClientIdentity.expiresAt). */
  stillValid(_user: string): Promise<boolean> {
    return Promise.resolve(true);
  }

  #refused(reason: string, claimName: string | undefined): null {
    this.#logger.debug({ clientAuth: 'jwt', reason, ...(claimName ? { claim: claimName } : {}) }, 'JWT refused');
    return null;
  }
}
