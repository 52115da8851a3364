import { createRemoteJWKSet, customFetch, errors, type CryptoKey, type FetchImplementation, type FlattenedJWSInput, type JWSHeaderParameters } from 'jose';
import type { Logger } from 'pino';
import { fetch, type Dispatcher } from 'undici';
import { OciError } from '../../registry/oci-errors.js';

export interface IssuerKeysOptions {
  issuer: string;
  /** null: from the issuer's `/.well-known/openid-configuration`. */
  jwksUrl: string | null;
  logger: Logger;
  /** Layover's upstream dispatcher: real resolvers, upstream CA trust. */
  dispatcher?: Dispatcher;
  /** Bound of one discovery or JWKS fetch. */
  timeoutMs: number;
  /** After a JWKS fetch, how long a token with an unknown `kid` does not cause another. */
  cooldownMs: number;
}

/** Key look-up failures that are the token's fault: no key, or no usable one, for its `kid` and `alg`. */
const TOKEN_FAULTS = [errors.JWKSNoMatchingKey, errors.JWKSMultipleMatchingKeys, errors.JOSENotSupported];

function unavailable(what: string, cause: unknown): OciError {
  return new OciError('UNAVAILABLE', `the identity provider cannot be asked for its keys now (${what})`, undefined, { cause });
}

/**
 * The signing keys of one OIDC issuer, for jose's jwtVerify. The JWKS URL is
 * discovered once from the issuer's metadata (whose `issuer` must be the one
 * configured, as OpenID Connect Discovery 4.3 requires); the key set is cached
 * by jose, fetched again after ten minutes, and at once for a `kid` it does not
 * know (rotation), but not more often than the cooldown, so tokens with made-up
 * key ids cannot turn Layover into a flood against the provider.
 *
 * Every fetch goes through Layover's upstream dispatcher and is bounded by the
 * timeout. A provider that cannot be reached, answers badly or too slowly
 * rejects with OciError UNAVAILABLE: the client gets 503, not a 401 that would
 * tell it its token is wrong.
 */
export class IssuerKeys {
  readonly #options: IssuerKeysOptions;
  readonly #fetch: FetchImplementation;
  #keySet: Promise<ReturnType<typeof createRemoteJWKSet>> | null = null;

  constructor(options: IssuerKeysOptions) {
    this.#options = options;
    const dispatcher = options.dispatcher;
    // undici's fetch takes the dispatcher; its types differ from the global fetch's in name only.
    this.#fetch = ((url: string, init: Parameters<FetchImplementation>[1]) =>
      fetch(url, { ...(init as object), ...(dispatcher ? { dispatcher } : {}) })) as unknown as FetchImplementation;
  }

  /** jose's key argument: the key for a token's header, or a rejection (OciError when the provider is at fault). */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const keySet = await this.#discover();
    try {
      return await keySet(header, token);
    } catch (error) {
      if (TOKEN_FAULTS.some((fault) => error instanceof fault)) throw error;
      const failure = unavailable('JWKS', error);
      this.#options.logger.warn({ issuer: this.#options.issuer, err: error }, failure.message);
      throw failure;
    }
  };

  #discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.#keySet ??= this.#jwksUrl().then(
      (url) => createRemoteJWKSet(new URL(url), { timeoutDuration: this.#options.timeoutMs, cooldownDuration: this.#options.cooldownMs, [customFetch]: this.#fetch }),
      (error: unknown) => {
        // Not remembered: the next request asks again.
        this.#keySet = null;
        this.#options.logger.warn({ issuer: this.#options.issuer, err: error instanceof OciError ? error.cause : error }, 'OIDC discovery failed');
        throw error instanceof OciError ? error : unavailable('discovery', error);
      },
    );
    return this.#keySet;
  }

  async #jwksUrl(): Promise<string> {
    const { issuer, jwksUrl, timeoutMs } = this.#options;
    if (jwksUrl !== null) return jwksUrl;
    const where = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const response = await this.#fetch(where, { headers: new Headers({ accept: 'application/json' }), method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    if (response.status !== 200) throw unavailable('discovery', new Error(`${where} answered ${response.status}`));
    const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
    if (metadata.issuer !== issuer) throw unavailable('discovery', new Error(`${where} names the issuer ${JSON.stringify(metadata.issuer)}, not ${issuer}`));
    if (typeof metadata.jwks_uri !== 'string' || !metadata.jwks_uri.startsWith('https://')) {
      throw unavailable('discovery', new Error(`${where} has no https jwks_uri`));
    }
    return metadata.jwks_uri;
  }
}
