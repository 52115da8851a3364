import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { LocalEndpoints, normalizeAddress, withoutSelf } from '../../../src/dns/loop-guard.js';
import { captureLogger, LEVEL } from '../../helpers/capture-logger.js';

describe('withoutSelf', () => {
  it('drops our own address and port, in any spelling, and warns', () => {
    const { logger, lines } = captureLogger();
    const kept = withoutSelf(
      [{ host: '127.0.0.1', port: 53 }, { host: '::FFFF:127.0.0.1', port: 53 }, { host: '127.0.0.1', port: 5353 }, { host: '127.0.0.2', port: 53 }],
      { host: '127.0.0.1', port: 53 },
      logger,
    );
    expect(kept).toEqual([{ host: '127.0.0.1', port: 5353 }, { host: '127.0.0.2', port: 53 }]);
    expect(lines.filter((line) => line.level === LEVEL.warn)).toHaveLength(2);
  });
  it('drops every loopback and local address with our port when listening on a wildcard', () => {
    const { logger } = captureLogger();
    const local = Object.values(networkInterfaces()).flat().find((info) => info && !info.internal)?.address;
    const upstreams = [{ host: '127.0.0.53', port: 53 }, { host: '::1', port: 53 }, { host: '192.0.2.200', port: 53 }];
    if (local) upstreams.push({ host: local, port: 53 });
    expect(withoutSelf(upstreams, { host: '0.0.0.0', port: 53 }, logger)).toEqual(
      local === '192.0.2.200' ? [] : [{ host: '192.0.2.200', port: 53 }],
    );
    expect(withoutSelf(upstreams, { host: '::', port: 54 }, logger)).toHaveLength(upstreams.length);
  });
  it('drops upstreams that are names, which would be resolved through us', () => {
    const { logger, lines } = captureLogger();
    expect(withoutSelf([{ host: 'dns.example', port: 53 }], { host: '127.0.0.1', port: 53 }, logger)).toEqual([]);
    expect(lines.map((line) => line.msg)).toEqual([expect.stringMatching(/not an IP/), expect.stringMatching(/no usable upstream/)]);
  });
});

describe('LocalEndpoints', () => {
  it('recognises a registered socket end in either address spelling until it is removed', () => {
    const endpoints = new LocalEndpoints();
    expect(endpoints.has('127.0.0.1', 4000)).toBe(false);
    const key = endpoints.add('127.0.0.1', 4000);
    expect(endpoints.has('::ffff:127.0.0.1', 4000)).toBe(true);
    expect(endpoints.has('127.0.0.1', 4001)).toBe(false);
    endpoints.delete(key);
    expect(endpoints.has('127.0.0.1', 4000)).toBe(false);
  });
  it('normalizes IPv4-mapped and upper-case IPv6 addresses', () => {
    expect(normalizeAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeAddress('FD00::1')).toBe('fd00::1');
  });
});
