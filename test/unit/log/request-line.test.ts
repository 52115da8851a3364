import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/log/logger.js';
import { RequestLineTemplate, writeRequestLine } from '../../../src/log/request-line.js';

/** Layover's logger writing raw lines into an array (not parsed: the bytes are what is compared). */
function rawLogger(level = 'info'): { logger: FastifyBaseLogger; raw: string[] } {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      raw.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: createLogger(level, sink) as FastifyBaseLogger, raw };
}

const withoutTime = (line: string | undefined): string => (line ?? '').replace(/"time":\d+/, '"time":0');

// Fields as a request line carries them, with the awkward values a client can put in a URL or Host.
const fields = () => ({
  method: 'GET',
  host: 'registry.test',
  url: '/v2/te"am\\app/manifests/sha256:' + 'a'.repeat(64) + '?x=\u0001\u2028',
  status: 200,
  bytes: 527,
  ms: 0.4,
  gone: undefined,
  odd: Number.NaN,
  joined: true,
  registry: 'registry.test',
  repo: 'team/app',
  cache: 'hit',
});

describe('writeRequestLine', () => {
  it('writes byte for byte the line pino writes for the same fields, request ID included', async () => {
    const { logger, raw } = rawLogger();
    const child = logger.child({ reqId: 'ab12-7' });
    child.info(fields(), 'request');
    writeRequestLine(child, fields());
    writeRequestLine(logger, fields(), 'ab12-7');
    await vi.waitFor(() => expect(raw).toHaveLength(3));
    expect(withoutTime(raw[1])).toBe(withoutTime(raw[0]));
    expect(withoutTime(raw[2])).toBe(withoutTime(raw[0]));
    expect(JSON.parse(raw[2]!)).toMatchObject({ level: 30, reqId: 'ab12-7', repo: 'team/app', odd: null, msg: 'request' });
    expect(JSON.parse(raw[2]!)).not.toHaveProperty('gone');
  });

  it('censors a top-level secret as pino\'s redaction does, and writes a line with no fields', async () => {
    const { logger, raw } = rawLogger();
    logger.info({ token: 'hunter2', password: 'p', url: '/v2/' }, 'request');
    writeRequestLine(logger, { token: 'hunter2', password: 'p', url: '/v2/' });
    logger.info({}, 'request');
    writeRequestLine(logger, {});
    await vi.waitFor(() => expect(raw).toHaveLength(4));
    expect(withoutTime(raw[1])).toBe(withoutTime(raw[0]));
    expect(raw[1]).not.toContain('hunter2');
    expect(withoutTime(raw[3])).toBe(withoutTime(raw[2]));
  });

  it('writes nothing below the logger\'s level', async () => {
    const { logger, raw } = rawLogger('warn');
    writeRequestLine(logger, fields(), 'ab12-7');
    logger.warn('after');
    await vi.waitFor(() => expect(raw).toHaveLength(1));
    expect(raw[0]).toContain('"msg":"after"');
  });

  it('hands a logger that is not pino\'s (a test\'s own) the ordinary call, on a child with the request ID', () => {
    const child = { info: vi.fn() };
    const logger = { child: vi.fn(() => child), info: vi.fn() } as unknown as FastifyBaseLogger;
    writeRequestLine(logger, { cache: 'hit' }, 'ab12-7');
    expect(logger.child).toHaveBeenCalledWith({ reqId: 'ab12-7' });
    expect(child.info).toHaveBeenCalledWith({ cache: 'hit' }, 'request');
  });
});

describe('RequestLineTemplate', () => {
  it('writes byte for byte the line writeRequestLine writes for the same fields and duration, made once for many', async () => {
    const { logger, raw } = rawLogger();
    // A URL that carries what the template looks for: only the key may match.
    const awkward = { ...fields(), url: `${fields().url},"ms":null,"x` };
    const template = new RequestLineTemplate(awkward);
    for (const ms of [0.4, 12, 0, 1234.5]) {
      writeRequestLine(logger, { ...awkward, ms }, 'ab12-7');
      template.write(logger, ms, 'ab12-7');
    }
    template.write(logger, 3);
    writeRequestLine(logger, { ...awkward, ms: 3 });
    await vi.waitFor(() => expect(raw).toHaveLength(10));
    for (let i = 0; i < 10; i += 2) expect(withoutTime(raw[i + 1])).toBe(withoutTime(raw[i]));
    expect(JSON.parse(raw[7]!)).toMatchObject({ ms: 1234.5, reqId: 'ab12-7', url: awkward.url, msg: 'request' });
    expect(JSON.parse(raw[8]!)).not.toHaveProperty('reqId');
  });

  it('censors a top-level secret, writes nothing below the level, and hands another logger the ordinary call', async () => {
    const { logger, raw } = rawLogger();
    new RequestLineTemplate({ token: 'hunter2', url: '/v2/', ms: 0 }).write(logger, 1);
    await vi.waitFor(() => expect(raw).toHaveLength(1));
    expect(raw[0]).not.toContain('hunter2');
    expect(JSON.parse(raw[0]!)).toMatchObject({ url: '/v2/', ms: 1 });

    const quiet = rawLogger('warn');
    new RequestLineTemplate({ url: '/v2/', ms: 0 }).write(quiet.logger, 1, 'ab12-7');
    quiet.logger.warn('after');
    await vi.waitFor(() => expect(quiet.raw).toHaveLength(1));
    expect(quiet.raw[0]).toContain('"msg":"after"');

    const child = { info: vi.fn() };
    const other = { child: vi.fn(() => child), info: vi.fn() } as unknown as FastifyBaseLogger;
    new RequestLineTemplate({ cache: 'hit', ms: 0, bytes: 5 }).write(other, 2.5, 'ab12-7');
    expect(other.child).toHaveBeenCalledWith({ reqId: 'ab12-7' });
    expect(child.info).toHaveBeenCalledWith({ cache: 'hit', ms: 2.5, bytes: 5 }, 'request');
  });
});

