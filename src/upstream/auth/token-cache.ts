import { LruMap } from '../../tls/lru-map.js';

/** What a token endpoint answered, as far as caching goes. */
export interface TokenAnswer {
  readonly token: string;
  /** Lifetime in seconds; the token spec's default is 60. */
  readonly expiresIn?: number;
  /** RFC 3339 time the token was issued (server clock). */
  readonly issuedAt?: string;
}

/** The token spec: a token without `expires_in` lives 60 s. */
const DEFAULT_LIFETIME_S = 60;
/** Refresh this long before the end of a token's life (at most), so a request never carries a token that expires on the way. */
const MAX_MARGIN_MS = 30_000;

interface Entry {
  token: string;
  expiresAt: number;
}

/** Tokens kept where other replicas find them (./shared-tokens.ts); every call returns at once. */
export interface SharedTokenStore {
  get(key: string): Entry | undefined;
  /** Kept in the background: a failure is the store's to report. */
  set(key: string, token: string, expiresAt: number): void;
  forget(key: string, token: string): void;
}

/**
 * Bearer tokens per key (registry, realm, service, scope, account) until shortly before they
 * expire. Concurrent misses for one key share one fetch; the map is bounded (least recently used
 * entries go first); a failed fetch is not cached. With a `shared` store (replicas of one cache
 * index), a miss here looks there before fetching, a fetched token is put there too, and a token
 * an upstream refused is taken out of both.
 */
export class TokenCache {
  readonly #entries: LruMap<string, Entry>;
  readonly #pending = new Map<string, Promise<string>>();
  readonly #now: () => number;
  readonly #shared: SharedTokenStore | null;

  constructor(options: { maxEntries?: number; now?: () => number; shared?: SharedTokenStore } = {}) {
    this.#entries = new LruMap(options.maxEntries ?? 1000);
    this.#now = options.now ?? Date.now;
    this.#shared = options.shared ?? null;
  }

  /** The cached token for `key`, or the one `fetch` brings (one fetch at a time per key). */
  get(key: string, fetch: () => Promise<TokenAnswer>): Promise<string> {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.#now()) return Promise.resolve(entry.token);
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const shared = this.#shared?.get(key);
    if (shared && shared.expiresAt > this.#now()) {
      this.#entries.set(key, shared);
      return Promise.resolve(shared.token);
    }
    const startedAt = this.#now();
    const promise = fetch()
      .then((answer) => {
        const expiresAt = expiry(answer, startedAt);
        if (expiresAt > this.#now()) {
          this.#entries.set(key, { token: answer.token, expiresAt });
          this.#shared?.set(key, answer.token, expiresAt);
        }
        return answer.token;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, promise);
    return promise;
  }

  /** Forgets `token` under `key` (the upstream refused it); a newer token fetched meanwhile stays. */
  invalidate(key: string, token: string): void {
    if (this.#entries.peek(key)?.token === token) this.#entries.delete(key);
    this.#shared?.forget(key, token);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * When a token stops being used: its lifetime counted from when we asked for it (our clock), or
 * from `issued_at` when that is earlier and plausible (not in the future, not before the lifetime
 * began: a skewed server clock must not make every token look expired), less a safety margin of
 * a tenth of the lifetime, at most 30 s.
 */
export function expiry(answer: TokenAnswer, startedAt: number): number {
  const lifetimeMs = (answer.expiresIn !== undefined && Number.isFinite(answer.expiresIn) && answer.expiresIn > 0 ? answer.expiresIn : DEFAULT_LIFETIME_S) * 1000;
  let base = startedAt;
  const issued = answer.issuedAt ? Date.parse(answer.issuedAt) : NaN;
  if (Number.isFinite(issued) && issued < startedAt && issued > startedAt - lifetimeMs) base = issued;
  return base + lifetimeMs - Math.min(MAX_MARGIN_MS, lifetimeMs / 10);
}
