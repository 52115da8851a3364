import { describe, expect, test } from 'vitest';
import { captureLogger } from '../../helpers/capture-logger.js';

describe('createLogger', () => {
  test('censors credentials at the top level, one level down and in logged headers', () => {
    const { logger, lines } = captureLogger('info');
    logger.info({ password: 'p1', token: 't1', registry: 'r.test' }, 'top');
    logger.info({ upstream: { username: 'u', password: 'p2', token: 't2' }, auth: { token: 't3' } }, 'nested');
    logger.info({ req: { method: 'GET', url: '/v2/?token=t4', headers: { host: 'h', authorization: 'Basic x' } } }, 'request');
    logger.info({ headers: { authorization: 'Bearer y', 'proxy-authorization': 'Basic z', accept: 'a' } }, 'headers');
    const text = JSON.stringify(lines);
    for (const secret of ['p1', 't1', 'p2', 't2', 't3', 't4', 'Basic x', 'Bearer y', 'Basic z']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ password: '[redacted]', token: '[redacted]', registry: 'r.test' });
    expect(lines[1]).toMatchObject({ upstream: { username: 'u', password: '[redacted]', token: '[redacted]' }, auth: { token: '[redacted]' } });
    expect(lines[2]).toMatchObject({ req: { method: 'GET', host: 'h', url: '/v2/?token=[redacted]' } });
    expect(lines[3]).toMatchObject({ headers: { authorization: '[redacted]', 'proxy-authorization': '[redacted]', accept: 'a' } });
  });

  test('a censored line leaves the logged object as it was, and plain fields pass unchanged', () => {
    const { logger, lines } = captureLogger('info');
    const upstream = { password: 'p', user: 'u' };
    logger.info({ upstream, method: 'GET', status: 200, ok: true, ms: 1.5, none: undefined }, 'line');
    expect(upstream).toEqual({ password: 'p', user: 'u' });
    expect(lines[0]).toMatchObject({ method: 'GET', status: 200, ok: true, ms: 1.5, upstream: { password: '[redacted]', user: 'u' } });
    expect(lines[0]).not.toHaveProperty('none');
  });

  test('an error logged with credentials in a nested field is censored too', () => {
    const { logger, lines } = captureLogger('info');
    const err = Object.assign(new Error('failed'), { token: 'secret-t' });
    logger.error({ err, config: { password: 'secret-p' } }, 'boom');
    expect(JSON.stringify(lines)).not.toContain('secret-p');
    expect(JSON.stringify(lines)).not.toContain('secret-t');
    expect(lines[0]).toMatchObject({ config: { password: '[redacted]' }, err: { message: 'failed', token: '[redacted]' } });
  });
});
