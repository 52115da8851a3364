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

/**
 * An error as it may be logged or passed on: its name, message and code only. Client libraries hang
 * their connection on errors (node-postgres' carries the password), and pino would print all of it.
 */
export function plainError(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const plain = new Error(error.message) as Error & { code?: unknown };
  plain.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') plain.code = code;
  return plain;
}
