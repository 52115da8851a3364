import { describe, expect, it } from 'vitest';
import { HostnameSet, parseHostname } from '../../../src/registry/hostname.js';

describe('parseHostname', () => {
  it('lower-cases and drops the trailing dot', () => {
    expect(parseHostname('Quay.IO.')).toBe('quay.io');
  });
  it.each(['', '.', 'a..b', '-a.com', 'a-.com', 'a b.com', 'x'.repeat(64) + '.com', 'é.com', 'a.com..'])(
    'rejects %j',
    (input) => expect(parseHostname(input)).toBeNull(),
  );
  it('rejects names longer than 253 characters', () => {
    expect(parseHostname(Array(64).fill('abc').join('.'))).toBeNull();
  });
});

describe('HostnameSet', () => {
  const set = new HostnameSet(['quay.io', '*.pkg.dev', 'Docker.Proxy']);
  it('matches exact names in any case', () => {
    expect(set.has('QUAY.io')).toBe(true);
    expect(set.has('docker.proxy.')).toBe(true);
    expect(set.has('quay.io.evil.com')).toBe(false);
  });
  it('matches wildcards below the suffix only', () => {
    expect(set.has('europe-docker.pkg.dev')).toBe(true);
    expect(set.has('a.b.pkg.dev')).toBe(true);
    expect(set.has('pkg.dev')).toBe(false);
    expect(set.has('xpkg.dev')).toBe(false);
  });
  it('lists names and wildcards apart', () => {
    expect(set.names()).toEqual(['quay.io', 'docker.proxy']);
    expect(set.wildcards()).toEqual(['*.pkg.dev']);
  });
  it('refuses invalid patterns', () => {
    expect(() => new HostnameSet(['bad name'])).toThrow(/not a hostname/);
    expect(() => new HostnameSet(['*.'])).toThrow(/pattern/);
  });
});
