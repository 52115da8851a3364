import { isIP } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics/metrics.js';

/** Pulls without credentials: Docker Hub counts them per source address. */
export const ANONYMOUS_ACCOUNT = 'anonymous';
/** Pulls with a client's own credentials: Layover cannot tell whose they are. */
export const CLIENT_ACCOUNT = 'client';

/** One account's budget as Docker Hub last reported it. */
export interface BudgetReading {
  /**
   * The configured credential's name (`user@registry`, never its secret), `client` (a client's own
   * credentials) or `anonymous` (none, or a client's own anonymous token: counted per address).
   */
  readonly account: string;
  /** The source address Docker Hub counted (its `docker-ratelimit-source` header); '' when it sent none we accept. */
  readonly source: string;
  readonly limit: number;
  readonly remaining: number;
  /** The window in seconds (`;w=21600`). */
  readonly windowSeconds: number | null;
  /** Date.now() of the reading. */
  readonly at: number;
}

export interface DockerHubBudgetOptions {
  /** DOCKER_HUB_BUDGET_LOW: below this many remaining pulls the budget is low. */
  low: number;
  logger: FastifyBaseLogger;
  metrics?: Metrics;
  now?: () => number;
}

type Headers = Record<string, string | string[] | undefined>;

/**
 * Readings kept (and exported as series): account x source pairs. Accounts come from the
 * configuration and sources from the upstream, so both are bounded here, not trusted: the oldest
 * pair is forgotten, and its series removed, when a new one would exceed this.
 */
export const MAX_BUDGET_READINGS = 64;
/** A reading without a window is trusted this long (Docker Hub's windows have been 1 to 6 hours). */
const DEFAULT_WINDOW_S = 6 * 3600;
/** A 429 without a usable Retry-After keeps the account exhausted this long. */
const DEFAULT_REFUSAL_S = 60;
/** A longer Retry-After is not believed (a hostile upstream would freeze every tag). */
const MAX_REFUSAL_S = 6 * 3600;
/** Longer account names are cut: they come from the configuration, but a label is no place for a paragraph. */
const MAX_ACCOUNT_LENGTH = 128;
/** Docker Hub names an account source by its UUID. */
const ACCOUNT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Docker Hub's pull budget per account and source address, read from the `RateLimit-Limit` and
 * `RateLimit-Remaining` headers of its answers (`100;w=21600`). Each header is an upstream's word:
 * anything but one well-formed value (a list, garbage, a negative or absurd count, remaining above
 * the limit) is ignored, and a reading is believed only for its window.
 */
export class DockerHubBudget {
  readonly #readings = new Map<string, BudgetReading>();
  /** Account -> when a 429 stops holding (Date.now() ms). */
  readonly #refusedUntil = new Map<string, number>();
  readonly #now: () => number;

  constructor(private readonly options: DockerHubBudgetOptions) {
    this.#now = options.now ?? Date.now;
  }

  /** What Docker Hub reported, one reading per account and source. */
  readings(): BudgetReading[] {
    return [...this.#readings.values()];
  }

  /**
   * Whether `account`'s budget is below DOCKER_HUB_BUDGET_LOW (or exhausted): its latest reading
   * still in its window. A client's own credentials may be an anonymous token, which spends the
   * address's budget: `client` is low when either is.
   */
  isLow(account: string): boolean {
    return this.#accountsOf(account).some((label) => {
      const latest = this.#latest(label);
      return this.#exhausted(label) || (latest !== undefined && latest.remaining < this.options.low);
    });
  }

  /** Whether `account` has no pull left: its latest reading says 0, or a 429 still holds. */
  isExhausted(account: string): boolean {
    return this.#accountsOf(account).some((label) => this.#exhausted(label));
  }

  /** Records the budget headers of one Docker Hub answer, if it has them. */
  observe(account: string, headers: Headers): void {
    this.#whileWatchingExhaustion(account, headers, () => this.#record(account, headers));
  }

  /** Docker Hub answered 429: the account is exhausted until its Retry-After (bounded) has passed. */
  observeRefusal(account: string, headers: Headers): void {
    this.#whileWatchingExhaustion(account, headers, () => {
      this.#record(account, headers);
      const seconds = Math.min(retryAfterSeconds(headers['retry-after'], this.#now()) ?? DEFAULT_REFUSAL_S, MAX_REFUSAL_S);
      this.#refusedUntil.set(accountLabel(account), this.#now() + seconds * 1000);
      while (this.#refusedUntil.size > MAX_BUDGET_READINGS) this.#refusedUntil.delete(this.#refusedUntil.keys().next().value!);
    });
  }

  /** Runs `update` and warns once when it leaves the account exhausted (a reading of 0 or a 429), not on every answer after. */
  #whileWatchingExhaustion(account: string, headers: Headers, update: () => void): void {
    const label = accountLabel(account);
    const before = this.isExhausted(label);
    update();
    if (before || !this.isExhausted(label)) return;
    const retryAfter = retryAfterSeconds(headers['retry-after'], this.#now());
    this.options.logger.warn({ account: label, ...(retryAfter === null ? {} : { retryAfterSeconds: Math.min(retryAfter, MAX_REFUSAL_S) }) }, 'Docker Hub pull budget exhausted: cached tags are served stale, uncached ones get its 429');
  }

  #record(account: string, headers: Headers): void {
    const limit = parseQuota(headers['ratelimit-limit']);
    const remaining = parseQuota(headers['ratelimit-remaining']);
    if (limit === null || remaining === null || limit.count === 0 || remaining.count > limit.count) return;
    const source = sourceOf(headers['docker-ratelimit-source']);
    // Counted per address: a client's own token was an anonymous one, and spent the address's budget.
    const label = account === CLIENT_ACCOUNT && isIP(source) !== 0 ? ANONYMOUS_ACCOUNT : accountLabel(account);
    const reading: BudgetReading = { account: label, source, limit: limit.count, remaining: remaining.count, windowSeconds: remaining.windowSeconds ?? limit.windowSeconds, at: this.#now() };
    const key = `${label}\n${source}`;
    // A reading past its window says nothing: a low one from yesterday does not silence today's warning.
    const before = this.#fresh(this.#readings.get(key));
    // Re-inserted last: the map's order is the order of the latest readings, oldest first.
    this.#readings.delete(key);
    this.#readings.set(key, reading);
    this.#forgetOldest();
    if (reading.remaining > 0) this.#refusedUntil.delete(label);
    this.options.metrics?.dockerHubLimit.set({ account: label, source }, reading.limit);
    this.options.metrics?.dockerHubRemaining.set({ account: label, source }, reading.remaining);
    // Once per crossing, not on every answer below the line.
    if (reading.remaining < this.options.low && (before === undefined || before.remaining >= this.options.low)) {
      this.options.logger.warn({ account: label, source, remaining: reading.remaining, limit: reading.limit }, 'Docker Hub pull budget low (DOCKER_HUB_BUDGET_LOW): cached tags are served first');
    }
  }

  #exhausted(label: string): boolean {
    const until = this.#refusedUntil.get(label);
    if (until !== undefined && until > this.#now()) return true;
    return this.#latest(label)?.remaining === 0;
  }

  #accountsOf(account: string): string[] {
    const label = accountLabel(account);
    return label === CLIENT_ACCOUNT ? [CLIENT_ACCOUNT, ANONYMOUS_ACCOUNT] : [label];
  }

  #latest(account: string): BudgetReading | undefined {
    let latest: BudgetReading | undefined;
    for (const reading of this.#readings.values()) if (reading.account === account) latest = reading;
    return this.#fresh(latest);
  }

  #fresh(reading: BudgetReading | undefined): BudgetReading | undefined {
    return reading && this.#now() - reading.at <= (reading.windowSeconds ?? DEFAULT_WINDOW_S) * 1000 ? reading : undefined;
  }

  #forgetOldest(): void {
    while (this.#readings.size > MAX_BUDGET_READINGS) {
      const [key, oldest] = this.#readings.entries().next().value!;
      this.#readings.delete(key);
      this.options.metrics?.dockerHubLimit.remove({ account: oldest.account, source: oldest.source });
      this.options.metrics?.dockerHubRemaining.remove({ account: oldest.account, source: oldest.source });
    }
  }
}

function accountLabel(account: string): string {
  return account.slice(0, MAX_ACCOUNT_LENGTH);
}

/** An address (IPv4 or IPv6) or an account UUID, as Docker Hub sends; '' for anything else. */
function sourceOf(value: string | string[] | undefined): string {
  if (typeof value !== 'string') return '';
  const source = value.trim();
  return isIP(source) !== 0 || ACCOUNT_ID.test(source) ? source.toLowerCase() : '';
}

/** `100;w=21600` (or `100`) -> its count and window; null for anything else (an upstream's header is hostile). */
export function parseQuota(value: string | string[] | undefined): { count: number; windowSeconds: number | null } | null {
  if (typeof value !== 'string') return null;
  const match = /^\s*(\d{1,9})\s*(?:;\s*w\s*=\s*(\d{1,9})\s*)?$/.exec(value);
  if (!match) return null;
  const windowSeconds = match[2] === undefined ? null : Number(match[2]);
  return { count: Number(match[1]), windowSeconds: windowSeconds === 0 ? null : windowSeconds };
}

/** Retry-After as delta-seconds or an HTTP date, in seconds from `now`; null when it is neither. */
export function retryAfterSeconds(value: string | string[] | undefined, now: number): number | null {
  if (typeof value !== 'string' || value.length > 64) return null;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text);
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}
