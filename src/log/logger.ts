import { pino, type Logger, type DestinationStream } from 'pino';
import pinoPretty from 'pino-pretty';
import { redactUrl } from './redact-url.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * Where the lines go: JSON on stdout for collectors, or, on a terminal (`auto`) or when asked for,
 * one coloured line per event. Synchronous either way, so that the last lines before an exit are written.
 */
function stdoutDestination(format: LogFormat): DestinationStream | undefined {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return undefined;
  return pinoPretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

/**
 * The one logger (fastify's pino) that every server of Layover logs through.
 * Headers are never logged whole; the fields that could carry credentials are
 * redacted again here in case a later change logs them.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["proxy-authorization"]',
          'req.headers.cookie',
          'headers.authorization',
          'headers["proxy-authorization"]',
          'password',
          'token',
          '*.password',
          '*.token',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method?: string; url?: string; headers?: Record<string, unknown> }) => ({
          method: req.method,
          host: req.headers?.host,
          url: req.url === undefined ? undefined : redactUrl(req.url),
        }),
      },
    },
    destination ?? stdoutDestination(format),
  );
}
