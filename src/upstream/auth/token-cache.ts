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

/**
 * Bearer tokens per key (registry, realm, service, scope, account) until shortly before they
 * expire. Concurrent misses for one key share one fetch; the map is bounded (least recently used
 * entries go first); a failed fetch is not cached.
 */
export class TokenCache {
  readonly #entries: LruMap<string, Entry>;
  readonly #pending = new Map<string, Promise<string>>();
  readonly #now: () => number;

  constructor(options: { maxEntries?: number; now?: () => number } = {}) {
    this.#entries = new LruMap(options.maxEntries ?? 1000);
    this.#now = options.now ?? Date.now;
  }

  /** The cached token for `key`, or the one `fetch` brings (one fetch at a time per key). */
  get(key: string, fetch: () => Promise<TokenAnswer>): Promise<string> {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.#now()) return Promise.resolve(entry.token);
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const startedAt = this.#now();
    const promise = fetch()
      .then((answer) => {
        const expiresAt = expiry(answer, startedAt);
        if (expiresAt > this.#now()) this.#entries.set(key, { token: answer.token, expiresAt });
        return answer.token;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, promise);
    return promise;
  }

  /** Forgets `token` under `key` (the upstream refused it); a newer token fetched meanwhile stays. */
  invalidate(key: string, token: string): void {
    if (this.#entries.peek(key)?.token === token) this.#entries.delete(key);
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
