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
  const pino = pinoParts(log);
  if (!pino) return ordinaryLine(log, fields, requestId);
  if (!pino.enabled) return;
  for (const key of SECRET_KEYS) if (fields[key] !== undefined) fields[key] = CENSOR;
  const body = JSON.stringify(fields);
  pino.stream.write(`${pino.start}${pino.time()}${pino.bindings}${idField(requestId)}${body.length > 2 ? `,${body.slice(1, -1)}` : ''}${MESSAGE}`);
}

/**
 * A request line known but for its duration (`ms`): a hit answered again and again has the same
 * method, host, URL, status, bytes and annotations each time. Serialised once; each request then
 * writes it with its time, request ID and duration, the line writeRequestLine would write for the
 * same fields (key order included: `ms` stays where it is in `fields`).
 */
export class RequestLineTemplate {
  readonly #fields: Fields;
  /** The serialised fields up to `"ms":` and after its value, MESSAGE included. */
  readonly #beforeMs: string;
  readonly #afterMs: string;

  /** `fields` must have an `ms` key (its value is not kept). */
  constructor(fields: Fields) {
    this.#fields = { ...fields, ms: 0 };
    for (const key of SECRET_KEYS) if (this.#fields[key] !== undefined) this.#fields[key] = CENSOR;
    // null serialises as itself; in a string value every quote is escaped, so only the key matches.
    const inner = JSON.stringify({ ...this.#fields, ms: null }).slice(1, -1);
    const at = inner.indexOf('"ms":null');
    this.#beforeMs = `,${inner.slice(0, at + '"ms":'.length)}`;
    this.#afterMs = `${inner.slice(at + '"ms":null'.length)}${MESSAGE}`;
  }

  /** Writes the line of one request that took `ms` (finite, as requestLine rounds it). */
  write(log: FastifyBaseLogger, ms: number, requestId?: string): void {
    const pino = pinoParts(log);
    if (!pino) return ordinaryLine(log, { ...this.#fields, ms }, requestId);
    if (!pino.enabled) return;
    pino.stream.write(`${pino.start}${pino.time()}${pino.bindings}${idField(requestId)}${this.#beforeMs}${ms}${this.#afterMs}`);
  }
}

interface PinoParts {
  readonly enabled: boolean;
  readonly start: string;
  readonly time: () => string;
  readonly bindings: string;
  readonly stream: { write(line: string): unknown };
}

/** What of pino's logger a line is written with; undefined for a logger without pino's internals. */
function pinoParts(log: FastifyBaseLogger): PinoParts | undefined {
  const internals = log as unknown as PinoInternals;
  const start = internals[pino.symbols.lsCacheSym]?.[INFO];
  const time = internals[pino.symbols.timeSym];
  const bindings = internals[pino.symbols.chindingsSym];
  const stream = internals[pino.symbols.streamSym];
  if (start === undefined || time === undefined || bindings === undefined || stream === undefined || internals.isLevelEnabled === undefined) return undefined;
  return { enabled: internals.isLevelEnabled('info'), start, time, bindings, stream };
}

function ordinaryLine(log: FastifyBaseLogger, fields: Fields, requestId: string | undefined): void {
  (requestId === undefined ? log : log.child({ reqId: requestId })).info(fields, 'request');
}

function idField(requestId: string | undefined): string {
  return requestId === undefined ? '' : `,"reqId":${JSON.stringify(requestId)}`;
}
