import { createHash, timingSafeEqual } from 'node:crypto';
import type { Authenticator, ClientIdentity } from '../authenticator.js';
import { parseBasic, parseBearer } from '../authenticator.js';
import type { ClientToken } from '../client-auth-config.js';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * `CLIENT_AUTH=tokens`: tokens from the config file, sent as `Bearer <token>`
 * or, for clients that only know `docker login`, as Basic `user:<token>`.
 * Every token is compared, in constant time over equal-length digests, so
 * neither the length nor the position of a match shows in the timing.
 */
export class StaticTokenAuthenticator implements Authenticator {
  readonly #tokens: ReadonlyArray<{ digest: Buffer; identity: ClientIdentity }>;

  constructor(tokens: readonly ClientToken[]) {
    this.#tokens = tokens.map((t) => ({ digest: digest(t.token.reveal()), identity: Object.freeze({ user: t.user, groups: Object.freeze([...t.groups]) }) }));
  }

  authenticate(authorization: string | undefined): Promise<ClientIdentity | null> {
    const basic = parseBasic(authorization);
    const presented = basic?.password ?? parseBearer(authorization);
    if (presented === null) return Promise.resolve(null);
    const candidate = digest(presented);
    let found: ClientIdentity | null = null;
    for (const entry of this.#tokens) {
      if (timingSafeEqual(candidate, entry.digest) && found === null) found = entry.identity;
    }
    if (found && basic && basic.user !== found.user) found = null;
    return Promise.resolve(found);
  }

  /** While the configuration still gives the user a token (the configuration is read at start). */
  stillValid(user: string): Promise<boolean> {
    return Promise.resolve(this.#tokens.some((entry) => entry.identity.user === user));
  }
}
