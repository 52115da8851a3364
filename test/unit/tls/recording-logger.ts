import type { FastifyBaseLogger } from 'fastify';
import { captureLogger, type LogLine } from '../../helpers/capture-logger.js';

/** The captured logger plus the "minted" lines, which the SNI tests count. */
export function recordingLogger(): { logger: FastifyBaseLogger; lines: LogLine[]; mints: () => LogLine[] } {
  const { logger, lines } = captureLogger('info');
  return { logger, lines, mints: () => lines.filter((line) => line.msg === 'minted TLS certificate') };
}
