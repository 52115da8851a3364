import { createHmac, randomBytes } from 'node:crypto';
import { OciError } from '../registry/oci-errors.js';
import { LruMap } from '../tls/lru-map.js';
import { type Authenticator, type ClientIdentity, parseBasic, type TokenLifetime } from './authenticator.js';

/** Different wrong passwords a client may send for one user within WINDOW_MS (checks in flight counted) before it must wait. */
export const MAX_FAILURES = 10;
/** Different wrong user-and-password pairs one client may send within WINDOW_MS, whatever the users. */
export const MAX_SOURCE_FAILURES = 100;
const WINDOW_MS = 60_000;
/** How long such a client's sign-ins (as that user, or at all) are refused unchecked. */
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

/** A client's wrong pairs within its window, whatever the users: spraying user names is guessing too. */
interface SourceFailures {
  count: number;
  since: number;
  blockedUntil: number;
}

/**
 * Wrong passwords, counted per client (signInSource) and user name: past MAX_FAILURES different
 * ones within a minute, that client's sign-ins as that user are refused for BLOCK_MS without being
 * checked (429, Retry-After); past MAX_SOURCE_FAILURES wrong pairs of any users, all its sign-ins are.
 * Guessing a password then costs the guesser time, not a directory bind or a bcrypt compare each, nor
 * the account a lockout by the directory's own policy; other clients, and other users behind one
 * address, sign in as usual. Passwords being checked count, so guesses sent in parallel are held to
 * the same number; one password sent by many requests at once (a pull's) or again and again (a stale
 * one) counts once. Only password modes (htpasswd, LDAP) are throttled: a token cannot be guessed,
 * and counting tokens would let expired ones lock out the valid ones of an address.
 */
export class SignInThrottle implements Authenticator {
  readonly #inner: Authenticator;
  readonly #now: () => number;
  readonly #failures = new LruMap<string, Failures>(MAX_TRACKED);
  readonly #sources = new LruMap<string, SourceFailures>(MAX_TRACKED);
  /** Fingerprints are keyed by a secret of this process: a heap dump gives no table to test guesses against. */
  readonly #key = randomBytes(32);

  constructor(inner: Authenticator, now: () => number = Date.now) {
    this.#inner = inner;
    this.#now = now;
  }

  async authenticate(authorization: string | undefined, source = ''): Promise<ClientIdentity | null> {
    const basic = parseBasic(authorization);
    if (basic === null) return this.#inner.authenticate(authorization, source);
    const key = `${source}|${userKey(basic.user)}`;
    const password = createHmac('sha256', this.#key).update(basic.password).digest('base64');
    const now = this.#now();
    const known = this.#failures.get(key);
    const failures = known && (known.blockedUntil > now || known.pending.size > 0 || now - known.since < WINDOW_MS) ? known : { wrong: new Set<string>(), pending: new Map<string, number>(), since: now, blockedUntil: 0 };
    const bySource = this.#sources.get(source);
    const guess = !failures.wrong.has(password) && !failures.pending.has(password);
    const sourceBlocked = bySource !== undefined && bySource.blockedUntil > now;
    if (sourceBlocked || failures.blockedUntil > now || (guess && failures.wrong.size + failures.pending.size >= MAX_FAILURES)) {
      const until = Math.max(failures.blockedUntil, sourceBlocked ? bySource.blockedUntil : 0, now + 1000);
      const seconds = Math.ceil((until - now) / 1000);
      throw new OciError('TOOMANYREQUESTS', `too many wrong passwords from this client: try again in ${seconds} s`, undefined, { headers: { 'retry-after': String(seconds) } });
    }
    failures.pending.set(password, (failures.pending.get(password) ?? 0) + 1);
    this.#failures.set(key, failures);
    let identity: ClientIdentity | null;
    try {
      identity = await this.#inner.authenticate(authorization, source);
    } catch (error) {
      // Not checked (the queue was full, the directory down): no failure, and nothing left behind.
      this.#settle(failures, password);
      this.#forgetIfIdle(key, failures);
      throw error;
    }
    this.#settle(failures, password);
    if (identity) {
      // The client knows the password: what it got wrong before is forgotten.
      failures.wrong.clear();
      this.#forgetIfIdle(key, failures);
      return identity;
    }
    if (!failures.wrong.has(password)) this.#wrongFrom(source);
    failures.wrong.add(password);
    if (failures.wrong.size >= MAX_FAILURES && failures.blockedUntil <= this.#now()) failures.blockedUntil = this.#now() + BLOCK_MS;
    return null;
  }

  stillValid(user: string, token?: TokenLifetime): Promise<boolean> {
    return this.#inner.stillValid(user, token);
  }

  /** One request with `password` is done. */
  #settle(failures: Failures, password: string): void {
    const waiting = failures.pending.get(password)! - 1;
    if (waiting > 0) failures.pending.set(password, waiting);
    else failures.pending.delete(password);
  }

  /** An entry with nothing to remember goes, only if it is still the one stored (not one made since). */
  #forgetIfIdle(key: string, failures: Failures): void {
    if (failures.wrong.size > 0 || failures.pending.size > 0 || failures.blockedUntil > this.#now()) return;
    if (this.#failures.peek(key) === failures) this.#failures.delete(key);
  }

  #wrongFrom(source: string): void {
    const now = this.#now();
    const known = this.#sources.get(source);
    const counted = known && (known.blockedUntil > now || now - known.since < WINDOW_MS) ? known : { count: 0, since: now, blockedUntil: 0 };
    counted.count += 1;
    if (counted.count >= MAX_SOURCE_FAILURES && counted.blockedUntil <= now) counted.blockedUntil = now + BLOCK_MS;
    this.#sources.set(source, counted);
  }
}

/**
 * A user name as a directory compares it (RFC 4518, roughly): compatibility forms folded (full-width
 * letters), invisible characters dropped, spaces collapsed, case ignored: `ａｌ\u00ADice ` is alice.
 */
function userKey(user: string): string {
  return user
    .normalize('NFKC')
    .replace(/[\u00AD\u034F\u180E\u200B-\u200F\u2060-\u2064\uFEFF]/g, '')
    .trim()
    .replace(/\s+/g, ' ')
    .toLowerCase();
}
