import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics/metrics.js';

/** One account's budget as Docker Hub last reported it. */
export interface BudgetReading {
  /** The credential's user, or `anonymous`. */
  readonly account: string;
  /** The source address Docker Hub counted (its `docker-ratelimit-source` header). */
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
}

/**
 * Docker Hub's pull budget per account and source address, read from the `RateLimit-Limit` and
 * `RateLimit-Remaining` headers of its answers (`100;w=21600`).
 */
export class DockerHubBudget {
  readonly #readings = new Map<string, BudgetReading>();

  constructor(private readonly options: DockerHubBudgetOptions) {}

  /** What Docker Hub reported, one reading per account and source. */
  readings(): BudgetReading[] {
    return [...this.#readings.values()];
  }

  /** Whether `account`'s last reading (any source) is below DOCKER_HUB_BUDGET_LOW. */
  isLow(account: string): boolean {
    return this.readings().some((r) => r.account === account && r.remaining < this.options.low);
  }

  /** Records the budget headers of one Docker Hub answer, if it has them. */
  observe(account: string, headers: Record<string, string | string[] | undefined>): void {
    const limit = parseQuota(headers['ratelimit-limit']);
    const remaining = parseQuota(headers['ratelimit-remaining']);
    if (limit === null || remaining === null) return;
    const sourceHeader = headers['docker-ratelimit-source'];
    const source = typeof sourceHeader === 'string' && sourceHeader.length <= 64 ? sourceHeader : '';
    const reading: BudgetReading = { account, source, limit: limit.count, remaining: remaining.count, windowSeconds: remaining.windowSeconds ?? limit.windowSeconds, at: Date.now() };
    const before = this.#readings.get(`${account}\n${source}`);
    this.#readings.set(`${account}\n${source}`, reading);
    this.options.metrics?.dockerHubLimit.set({ account, source }, reading.limit);
    this.options.metrics?.dockerHubRemaining.set({ account, source }, reading.remaining);
    // Once per crossing, not on every answer below the line.
    if (reading.remaining < this.options.low && (before === undefined || before.remaining >= this.options.low)) {
      this.options.logger.warn({ account, source, remaining: reading.remaining, limit: reading.limit }, 'Docker Hub pull budget low (DOCKER_HUB_BUDGET_LOW): cached tags are served first');
    }
  }
}

/** `100;w=21600` -> its count and window; null for anything else (an upstream's header is hostile). */
function parseQuota(value: string | string[] | undefined): { count: number; windowSeconds: number | null } | null {
  if (typeof value !== 'string') return null;
  const match = /^\s*(\d{1,9})\s*(?:;\s*w\s*=\s*(\d{1,9}))?/.exec(value);
  if (!match) return null;
  return { count: Number(match[1]), windowSeconds: match[2] === undefined ? null : Number(match[2]) };
}
