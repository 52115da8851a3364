import Fastify, { type FastifyBaseLogger } from 'fastify';

export interface LogLine {
  level: number;
  msg: string;
  host?: string;
  ms?: number;
  [field: string]: unknown;
}

/** Fastify's own pino logger, writing into an array the test can read. */
export function recordingLogger(): { logger: FastifyBaseLogger; lines: LogLine[]; mints: () => LogLine[] } {
  const lines: LogLine[] = [];
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line) as LogLine) } } });
  return { logger: app.log, lines, mints: () => lines.filter((line) => line.msg === 'minted TLS certificate') };
}
