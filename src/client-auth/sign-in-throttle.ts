import { OciError } from '../registry/oci-errors.js';
import { LruMap } from '../tls/lru-map.js';
import { type Authenticator, type ClientIdentity, parseBasic, type TokenLifetime } from './authenticator.js';

/** Wrong passwords a client may send for one user within WINDOW_MS (checks in flight counted) before it must wait. */
export const MAX_FAILURES = 10;
const WINDOW_MS = 60_000;
/** How long such a client's sign-ins as that user are refused unchecked. */
export const BLOCK_MS = 60_000;
/** Clients and user names followed at once; past it the oldest goes. */
const MAX_TRACKED = 10_000;

interface Failures {
  count: number;
  /** Checks under way: each may be one more failure, so they count against the limit too. */
  pending: number;
  since: number;
  blockedUntil: number;
}

/**
 * Wrong passwords, counted per client (signInSource) and user name: past MAX_FAILURES within a
 * minute, that client's sign-ins as that user are refused for BLOCK_MS without being checked (429,
 * Retry-After). Guessing a password then costs the guesser time, not a directory bind or a bcrypt
 * compare each, nor the account a lockout by the directory's own policy; other clients, and other
 * users behind one address, sign in as usual. Checks under way count, so guesses sent in parallel
 * are held to the same number. Only Basic credentials are counted: a token (Layover's, a static one,
 * a JWT) cannot be guessed, and counting them per address would let junk lock out every token there.
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
    const user = parseBasic(authorization)?.user;
    if (user === undefined) return this.#inner.authenticate(authorization, source);
    // Directories compare names without case or extra spaces: `Alice ` is alice's count too.
    const key = `${source}|${user.trim().replace(/\s+/g, ' ').toLowerCase()}`;
    const now = this.#now();
    const known = this.#failures.get(key);
    const failures = known && (known.blockedUntil > now || known.pending > 0 || now - known.since < WINDOW_MS) ? known : { count: 0, pending: 0, since: now, blockedUntil: 0 };
    if (failures.blockedUntil > now || failures.count + failures.pending >= MAX_FAILURES) {
      failures.blockedUntil = Math.max(failures.blockedUntil, now + (failures.blockedUntil > now ? 0 : BLOCK_MS));
      this.#failures.set(key, failures);
      const seconds = Math.ceil((failures.blockedUntil - now) / 1000);
      throw new OciError('TOOMANYREQUESTS', `too many wrong credentials from this client: try again in ${seconds} s`, undefined, { headers: { 'retry-after': String(seconds) } });
    }
    failures.pending += 1;
    this.#failures.set(key, failures);
    let identity: ClientIdentity | null;
    try {
      identity = await this.#inner.authenticate(authorization, source);
    } finally {
      failures.pending -= 1;
    }
    if (identity) {
      // The client knows the password: what it got wrong before is forgotten.
      failures.count = 0;
      if (failures.pending === 0 && failures.blockedUntil <= now) this.#failures.delete(key);
      return identity;
    }
    failures.count += 1;
    if (failures.count >= MAX_FAILURES) failures.blockedUntil = this.#now() + BLOCK_MS;
    return null;
  }

  stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    return this.#inner.stillValid(user, token);
  }
}
