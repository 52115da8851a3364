import { createHmac, randomBytes } from 'node:crypto';
import { OciError } from '../registry/oci-errors.js';
import { LruMap } from '../tls/lru-map.js';
import { type Authenticator, type ClientIdentity, parseBasic, type TokenLifetime } from './authenticator.js';

/** Different wrong passwords a client may send for one user within WINDOW_MS (checks in flight counted) before it must wait. */
export const MAX_FAILURES = 10;
const WINDOW_MS = 60_000;
/** How long such a client's sign-ins as that user are refused unchecked. */
export const BLOCK_MS = 60_000;
/** Clients and user names followed at once; past it the oldest goes. */
const MAX_TRACKED = 10_000;

interface Failures {
  /** The wrong passwords (keyed fingerprints, never the passwords): one sent again is no new guess. */
  readonly wrong: Set<string>;
  /** Passwords being checked, with how many requests wait for each: each may be one more wrong one. */
  readonly pending: Map<string, number>;
  since: number;
  blockedUntil: number;
}

/**
 * Wrong passwords, counted per client (signInSource) and user name: past MAX_FAILURES different
 * ones within a minute, that client's sign-ins as that user are refused for BLOCK_MS without being
 * checked (429, Retry-After). Guessing a password then costs the guesser time, not a directory bind or
 * a bcrypt compare each, nor the account a lockout by the directory's own policy; other clients, and
 * other users behind one address, sign in as usual. Passwords being checked count, so guesses sent in
 * parallel are held to the same number; one password sent by many requests at once (a pull's) or
 * again and again (a stale one) counts once. Only Basic credentials are counted: a token (Layover's,
 * a static one, a JWT) cannot be guessed, and counting them per address would let junk lock out every
 * token there.
 */
export class SignInThrottle implements Authenticator {
  readonly #inner: Authenticator;
  readonly #now: () => number;
  readonly #failures = new LruMap<string, Failures>(MAX_TRACKED);
  /** Fingerprints are keyed by a secret of this process: a heap dump gives no table to test guesses against. */
  readonly #key = randomBytes(32);

  constructor(inner: Authenticator, now: () => number = Date.now) {
    this.#inner = inner;
    this.#now = now;
  }

  async authenticate(authorization: string | undefined, source = ''): Promise<ClientIdentity | null> {
    const basic = parseBasic(authorization);
    if (basic === null) return this.#inner.authenticate(authorization, source);
    // Directories compare names without case or extra spaces: `Alice ` is alice's count too.
    const key = `${source}|${basic.user.trim().replace(/\s+/g, ' ').toLowerCase()}`;
    const password = createHmac('sha256', this.#key).update(basic.password).digest('base64');
    const now = this.#now();
    const known = this.#failures.get(key);
    const failures = known && (known.blockedUntil > now || known.pending.size > 0 || now - known.since < WINDOW_MS) ? known : { wrong: new Set<string>(), pending: new Map<string, number>(), since: now, blockedUntil: 0 };
    const guess = !failures.wrong.has(password) && !failures.pending.has(password);
    if (failures.blockedUntil > now || (guess && failures.wrong.size + failures.pending.size >= MAX_FAILURES)) {
      const seconds = Math.max(1, Math.ceil((Math.max(failures.blockedUntil, now + 1000) - now) / 1000));
      throw new OciError('TOOMANYREQUESTS', `too many wrong passwords from this client: try again in ${seconds} s`, undefined, { headers: { 'retry-after': String(seconds) } });
    }
    failures.pending.set(password, (failures.pending.get(password) ?? 0) + 1);
    this.#failures.set(key, failures);
    let identity: ClientIdentity | null;
    try {
      identity = await this.#inner.authenticate(authorization, source);
    } finally {
      const waiting = failures.pending.get(password)! - 1;
      if (waiting > 0) failures.pending.set(password, waiting);
      else failures.pending.delete(password);
    }
    if (identity) {
      // The client knows the password: what it got wrong before is forgotten.
      failures.wrong.clear();
      if (failures.pending.size === 0 && failures.blockedUntil <= now) this.#failures.delete(key);
      return identity;
    }
    failures.wrong.add(password);
    if (failures.wrong.size >= MAX_FAILURES && failures.blockedUntil <= now) failures.blockedUntil = this.#now() + BLOCK_MS;
    return null;
  }

  stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    return this.#inner.stillValid(user, token);
  }
}
