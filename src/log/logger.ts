import { pino, type Logger, type DestinationStream } from 'pino';
import { redactUrl } from './redact-url.js';

/**
 * The one logger (fastify's pino) that every server of Layover logs through.
 * Headers are never logged whole; the fields that could carry credentials are
 * redacted again here in case a later change logs them.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
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
    destination,
  );
}
