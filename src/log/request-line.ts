import { pino } from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { CENSOR, SECRET_KEYS } from './logger.js';

type Fields = Record<string, string | number | boolean | undefined>;

interface PinoInternals {
  isLevelEnabled?(level: string): boolean;
  [pino.symbols.lsCacheSym]?: Record<number, string>;
  [pino.symbols.timeSym]?: () => string;
  [pino.symbols.chindingsSym]?: string;
  [pino.symbols.streamSym]?: { write(line: string): unknown };
}

const INFO = 30;
const MESSAGE = ',"msg":"request"}\n';

/**
 * Writes one request's `info` line, byte for byte the line pino writes for `log.info(fields,
 * 'request')` with Layover's logger (its level, time, pid, hostname and request ID, then the fields),
 * from a single JSON.stringify of the flat fields. pino serialises an object key by key into a
 * string of many pieces that its stream then measures and flattens: about an eighth of a cached
 * manifest's time on the main thread and a fifth of the garbage it left (bench/README.md). The fields are flat (strings, numbers,
 * booleans), so nothing is nested to censor; a top-level secret is censored as pino's redaction does.
 * A logger without pino's internals (a test's own) gets the ordinary call. `requestId`: the ID a
 * request's child logger binds (fastify's `reqId`), for a request answered without one.
 */
export function writeRequestLine(log: FastifyBaseLogger, fields: Fields, requestId?: string): void {
  const internals = log as unknown as PinoInternals;
  const start = internals[pino.symbols.lsCacheSym]?.[INFO];
  const time = internals[pino.symbols.timeSym];
  const bindings = internals[pino.symbols.chindingsSym];
  const stream = internals[pino.symbols.streamSym];
  if (start === undefined || time === undefined || bindings === undefined || stream === undefined || internals.isLevelEnabled === undefined) {
    return void (requestId === undefined ? log : log.child({ reqId: requestId })).info(fields, 'request');
  }
  if (!internals.isLevelEnabled('info')) return;
  for (const key of SECRET_KEYS) if (fields[key] !== undefined) fields[key] = CENSOR;
  const body = JSON.stringify(fields);
  const id = requestId === undefined ? '' : `,"reqId":${JSON.stringify(requestId)}`;
  stream.write(`${start}${time()}${bindings}${id}${body.length > 2 ? `,${body.slice(1, -1)}` : ''}${MESSAGE}`);
}
