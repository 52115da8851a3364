/** The hot path's matcher must intercept exactly the names HostnameSet intercepts, wildcards included. */
import { describe, expect, it } from 'vitest';
import { EXACT, InterceptedMatcher } from '../../../src/dns/intercepted-matcher.js';
import { HostnameSet } from '../../../src/registry/hostname.js';
import { readQuestion } from '../../../src/dns/wire.js';
import { query } from './packets.js';

describe('InterceptedMatcher', () => {
  const set = new HostnameSet(['docker.proxy', 'registry.test', '*.mirror.test', '*.deep.example.org']);
  const matcher = new InterceptedMatcher(set);
  const names = [
    'docker.proxy', 'DOCKER.Proxy', 'registry.test', 'x.registry.test', 'mirror.test', 'a.mirror.test', 'a.b.mirror.test',
    '-a.mirror.test', 'a-.mirror.test', '_a.mirror.test', 'amirror.test', 'x.deep.example.org', 'deep.example.org', 'proxy', '',
    // 253 characters, the longest name the wire carries.
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(49)}.mirror.test`,
  ];

  it.each(names)('agrees with HostnameSet on %j as the wire reader hands it over', (name) => {
    const question = readQuestion(query(name, 1));
    const hostname = question?.hostname ?? null;
    if (hostname === null) return; // the server never asks about names the reader will not spell
    expect(matcher.has(hostname)).toBe(set.has(hostname));
  });

  it('intercepts the exact names and the names under a wildcard, not the wildcard itself or bad labels', () => {
    expect(matcher.has('docker.proxy')).toBe(true);
    expect(matcher.has('a.b.mirror.test')).toBe(true);
    expect(matcher.has('mirror.test')).toBe(false);
    expect(matcher.has('-a.mirror.test')).toBe(false);
    expect(matcher.has('amirror.test')).toBe(false);
  });

  it('says what intercepts a name: itself, or the wildcard the rate limit counts it under', () => {
    expect(matcher.match('docker.proxy')).toBe(EXACT);
    expect(matcher.match('a.b.mirror.test')).toBe('*.mirror.test');
    expect(matcher.match('x.deep.example.org')).toBe('*.deep.example.org');
    expect(matcher.match('mirror.test')).toBeNull();
    expect(matcher.match('-a.mirror.test')).toBeNull();
  });
});
