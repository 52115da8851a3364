import { describe, expect, it } from 'vitest';
import { splitHostPort } from '../../../src/proxy/upstream-target.js';
import { originHost } from '../../../src/upstream/origin-host.js';

describe('splitHostPort', () => {
  it.each([
    ['registry.test', { host: 'registry.test', port: null }],
    ['Registry.Test:443', { host: 'registry.test', port: null }],
    ['registry.test:5000', { host: 'registry.test', port: 5000 }],
    ['registry.test.', { host: 'registry.test', port: null }],
  ])('splits %s', (value, parts) => {
    expect(splitHostPort(value)).toEqual(parts);
    // Asked again (from the memo): the same answer.
    expect(splitHostPort(value)).toEqual(parts);
  });

  it.each(['', 'registry.test:0', 'registry.test:65536', 'registry.test:', '[::1]:443', 'a b', 'registry.test:5000:1'])('refuses %j, every time', (value) => {
    expect(splitHostPort(value)).toBeNull();
    expect(splitHostPort(value)).toBeNull();
  });

  it('hands out parts no caller can change for the next request', () => {
    const parts = splitHostPort('frozen.test:5000')!;
    expect(() => Object.assign(parts, { port: 22 })).toThrow(TypeError);
    expect(splitHostPort('frozen.test:5000')).toEqual({ host: 'frozen.test', port: 5000 });
  });

  it('stays right past its bound of remembered names', () => {
    for (let i = 0; i < 3000; i++) expect(splitHostPort(`n${i}.test:${(i % 60000) + 1}`)).toEqual({ host: `n${i}.test`, port: (i % 60000) + 1 === 443 ? null : (i % 60000) + 1 });
    expect(splitHostPort('n0.test:1')).toEqual({ host: 'n0.test', port: 1 });
  });
});

describe('originHost', () => {
  it.each([
    ['https://registry.test', 'registry.test'],
    ['https://registry.test:5000', 'registry.test:5000'],
    ['https://registry.test:443', 'registry.test'],
    ['https://[::1]:8443', '[::1]:8443'],
  ])('%s -> %s, from the memo as from the URL', (origin, host) => {
    expect(originHost(origin)).toBe(host);
    expect(originHost(origin)).toBe(new URL(origin).host);
  });
});
