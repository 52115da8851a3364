/** A real pino logger (fastify's) whose JSON lines the test can read. */
import Fastify, { type FastifyBaseLogger } from 'fastify';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

export function captureLogger(level: keyof typeof LEVEL = 'debug'): { logger: FastifyBaseLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const app = Fastify({ logger: { level, stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } } });
  return { logger: app.log, lines };
}
