import { createHmac, randomBytes } from 'node:crypto';
import type { ClientIdentity } from '../authenticator.js';

/** Enough for every user of a large CI fleet; past it the oldest entry goes. */
const DEFAULT_MAX_ENTRIES = 1_000;

export interface RememberedOptions {
  /** How long a success is remembered (CLIENT_AUTH_CACHE_TTL); 0 remembers nothing. */
  ttlMs: number;
  maxEntries?: number;
}

/**
 * Successful credential checks, remembered for a while: a pull makes dozens of
 * requests with the same credentials, and each LDAP bind is a round trip, each
 * bcrypt compare tens of milliseconds. Concurrent checks of the same
 * credentials share one check, so a cold start of a parallel pull asks the
 * directory once.
 *
 * Entries are keyed by an HMAC of user and password under a key that exists
 * only in this process: the password itself is never kept, and a heap dump
 * does not give a table to test guesses against without the key. Only
 * successes are remembered; a wrong password is checked again every time (the
 * directory's lockout policy keeps counting). The map is bounded.
 */
export class RememberedCredentials {
  readonly #key = randomBytes(32);
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { identity: ClientIdentity; expires: number }>();
  readonly #inFlight = new Map<string, Promise<ClientIdentity | null>>();
  /** Bumped by clear(): a check that started before is not remembered after. */
  #generation = 0;

  constructor(options: RememberedOptions) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  }

  /** The remembered identity for these credentials, or the result of `check` (remembered when not null). */
  async check(user: string, password: string, check: () => Promise<ClientIdentity | null>): Promise<ClientIdentity | null> {
    const key = createHmac('sha256', this.#key).update(user).update('\0').update(password).digest('base64');
    const remembered = this.#entries.get(key);
    if (remembered) {
      if (remembered.expires > Date.now()) return remembered.identity;
      this.#entries.delete(key);
    }
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const generation = this.#generation;
    const checking: Promise<ClientIdentity | null> = check().finally(() => {
      if (this.#inFlight.get(key) === checking) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, checking);
    const identity = await checking;
    if (identity && this.#ttlMs > 0 && generation === this.#generation) {
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, { identity, expires: Date.now() + this.#ttlMs });
    }
    return identity;
  }

  /** Forgets every success, e.g. when the user list changed. */
  clear(): void {
    this.#generation++;
    this.#entries.clear();
    this.#inFlight.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
