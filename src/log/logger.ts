import { pino, stdSerializers, type Logger, type DestinationStream } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import { CoalescingDestination } from './coalescing-destination.js';
import { redactUrl } from './redact-url.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

const STDOUT = 1;

/**
 * Where the lines go: JSON on stdout for collectors, written in batches (CoalescingDestination: a
 * line waits at most 10 ms, and nothing waits at exit), or, on a terminal (`auto`) or when asked
 * for, one coloured line per event, written synchronously.
 */
function stdoutDestination(format: LogFormat): DestinationStream {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return new CoalescingDestination(pino.destination({ dest: STDOUT, minLength: 0 }), STDOUT);
  // Loaded only here: JSON logs (every service manager, every container) never need it.
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pinoPretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

export const CENSOR = '[redacted]';
/** Keys whose value is censored at the top of a line (pino's redaction) and one level down in any logged object. */
export const SECRET_KEYS = ['password', 'token'] as const;

/** `value`, or a shallow copy of it with its credentials censored; the logged object itself is never changed. */
function censorNested(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of SECRET_KEYS) {
    if (!Object.hasOwn(value, key)) continue;
    copy ??= { ...value };
    copy[key] = CENSOR;
  }
  return copy ?? value;
}

/**
 * Censors SECRET_KEYS one level down in every field but `err` (whose serializer censors it once it
 * is a plain object). pino's wildcard paths (`*.password`) did the same through its generic redaction
 * of every field of every line, strings and numbers included: about a third of a request line's cost.
 */
function censorFields(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) {
    if (key === 'err') continue;
    const value = fields[key];
    if (value === null || typeof value !== 'object') continue;
    const censored = censorNested(value);
    if (censored === value) continue;
    copy ??= { ...fields };
    copy[key] = censored;
  }
  return copy ?? fields;
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
          ...SECRET_KEYS,
        ],
        censor: CENSOR,
      },
      // Not child bindings (pino formats those once, without this): Layover binds only request IDs.
      formatters: { log: censorFields },
      serializers: {
        err: (error: Error) => censorNested(stdSerializers.err(error)),
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
