import { OciError } from '../registry/oci-errors.js';
import { LruMap } from '../tls/lru-map.js';
import { type Authenticator, type ClientIdentity, parseBasic, type TokenLifetime } from './authenticator.js';

/** Wrong credentials a client may send as one user within WINDOW_MS before it must wait. */
export const MAX_FAILURES = 10;
const WINDOW_MS = 60_000;
/** How long such a client's sign-ins as that user are refused unchecked. */
export const BLOCK_MS = 60_000;
/** Clients and user names followed at once; past it the oldest goes. */
const MAX_TRACKED = 10_000;

interface Failures {
  count: number;
  since: number;
  blockedUntil: number;
}

/**
 * Wrong credentials, counted per client (signInSource) and user name: past MAX_FAILURES within a
 * minute, that client's sign-ins as that user are refused for BLOCK_MS without being checked (429,
 * Retry-After). Guessing a password then costs the guesser time, not a directory bind or a bcrypt
 * compare each, nor the account a lockout by the directory's own policy; other clients, and other
 * users behind one address, sign in as usual. A request without credentials is no failure (clients
 * ask first without, for the challenge).
 */
export class SignInThrottle implements Authenticator {
  readonly #inner: Authenticator;
  readonly #now: () => number;
  readonly #failures = new LruMap<string, Failures>(MAX_TRACKED);

  constructor(inner: Authenticator, now: () => number = Date.now) {
    this.#inner = inner;
    this.#now = now;
  }

  async authenticate(authorization: string | undefined, source = ''): Promise<ClientIdentity | null> {
    if (authorization === undefined) return this.#inner.authenticate(authorization, source);
    // A token names no user here: its client is followed as a whole.
    const key = `${source}|${parseBasic(authorization)?.user ?? ''}`;
    const now = this.#now();
    const known = this.#failures.get(key);
    if (known && known.blockedUntil > now) {
      const seconds = Math.ceil((known.blockedUntil - now) / 1000);
      throw new OciError('TOOMANYREQUESTS', `too many wrong credentials from this client: try again in ${seconds} s`, undefined, { headers: { 'retry-after': String(seconds) } });
    }
    const identity = await this.#inner.authenticate(authorization, source);
    if (identity) {
      this.#failures.delete(key);
      return identity;
    }
    const failures = known && now - known.since < WINDOW_MS ? known : { count: 0, since: now, blockedUntil: 0 };
    failures.count += 1;
    if (failures.count >= MAX_FAILURES) failures.blockedUntil = now + BLOCK_MS;
    this.#failures.set(key, failures);
    return null;
  }

  stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    return this.#inner.stillValid(user, token);
  }
}
