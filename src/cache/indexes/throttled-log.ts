import type { FastifyBaseLogger } from 'fastify';

/**
 * Logs one kind of failure at most once per interval, with how many were held back: a backend that is
 * down fails every write, and a log line per write would drown everything else.
 */
export class ThrottledLog {
  private readonly logger: FastifyBaseLogger;
  private readonly intervalMs: number;
  private readonly lastAt = new Map<string, number>();
  private readonly held = new Map<string, number>();

  constructor(logger: FastifyBaseLogger, intervalMs = 10_000) {
    this.logger = logger;
    this.intervalMs = intervalMs;
  }

  error(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.lastAt.get(message);
    if (last !== undefined && now - last < this.intervalMs) {
      this.held.set(message, (this.held.get(message) ?? 0) + 1);
      return;
    }
    const suppressed = this.held.get(message) ?? 0;
    this.held.delete(message);
    this.lastAt.set(message, now);
    this.logger.error(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }

  /** The failure is over: the next one is logged at once. */
  reset(message: string): void {
    this.lastAt.delete(message);
    this.held.delete(message);
  }
}
