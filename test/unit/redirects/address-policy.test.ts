import { describe, expect, it } from 'vitest';
import { AddressPolicy, normalizeAddress, parseCidr } from '../../../src/upstream/address-policy.js';
import { redactUrl } from '../../../src/log/redact-url.js';

const policy = new AddressPolicy([]);

describe('the storage address policy (SSRF guard)', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.9.9.9', 'loopback'],
    ['::1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private (shared address space)'],
    ['fd00::1', 'unique local (private)'],
    ['fc12:3456::1', 'unique local (private)'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    // IPv6 spellings of forbidden IPv4 addresses.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:7f00:1::1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['::a9fe:a9fe', 'link-local'],
    ['::10.0.0.1', 'private'],
    ['64:ff9b:1::a00:1', 'private'],
    // Another /96 of the local-use NAT64 /48: which IPv4 host it reaches is the site's to say.
    ['64:ff9b:1:abcd::a00:1', 'NAT64 (local use)'],
    ['64:ff9b:1:ffff:ffff:ffff:808:808', 'NAT64 (local use)'],
    ['fec0::1', 'site-local'],
    ['::ffff:0:7f00:1', 'loopback'],
  ])('refuses %s (%s)', (address, kind) => {
    expect(policy.check(address)).toEqual({ allowed: false, kind });
  });

  it.each(['1.1.1.1', '52.216.1.1', '172.32.0.1', '192.169.0.1', '2606:4700::1111', '2001:db9::1', '::8.8.8.8', '64:ff9b::808:808', '64:ff9b:1::808:808'])('allows the public address %s', (address) => {
    expect(policy.check(address)).toEqual({ allowed: true });
  });

  it('allows what REDIRECT_ALLOW_NETWORKS lists, and only that', () => {
    const allowing = new AddressPolicy(['10.20.0.0/16', '127.0.0.5', 'fd00:1::/32']);
    expect(allowing.check('10.20.3.4').allowed).toBe(true);
    expect(allowing.check('10.21.3.4').allowed).toBe(false);
    expect(allowing.check('127.0.0.5').allowed).toBe(true);
    expect(allowing.check('::ffff:127.0.0.5').allowed).toBe(true);
    expect(allowing.check('127.0.0.6').allowed).toBe(false);
    expect(allowing.check('fd00:1:2::3').allowed).toBe(true);
    expect(allowing.check('fd00:2::3').allowed).toBe(false);
  });

  it('allows the redirecting registry’s own addresses', () => {
    expect(policy.check('10.0.0.5', new Set(['10.0.0.5'])).allowed).toBe(true);
    expect(policy.check('10.0.0.6', new Set(['10.0.0.5'])).allowed).toBe(false);
  });

  it('refuses what is not an address', () => {
    expect(policy.check('localhost')).toEqual({ allowed: false, kind: 'malformed' });
  });

  it('normalizes IPv4-mapped IPv6 and brackets', () => {
    expect(normalizeAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(normalizeAddress('[::FFFF:7f00:1]')).toBe('127.0.0.1');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
  });

  it('parses networks', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 4 });
    expect(parseCidr('::1')).toEqual({ address: '::1', prefix: 128, family: 6 });
    expect(parseCidr('10.0.0.0/33')).toBeNull();
    expect(parseCidr('example.com/8')).toBeNull();
  });
});

describe('log redaction of docker.proxy URLs', () => {
  it('hides the carried storage URL and the signature, keeps the rest', () => {
    const url = '/layover/blobs/sha256:ab?registry=quay.io&repo=org%2Fapp&expires=1767225600&target=aHR0cHM6Ly9jZG4&sig=c2ln';
    expect(redactUrl(url)).toBe('/layover/blobs/sha256:ab?registry=quay.io&repo=org%2Fapp&expires=1767225600&target=[redacted]&sig=[redacted]');
  });
});
