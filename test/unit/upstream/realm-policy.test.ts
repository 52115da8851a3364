import { describe, expect, it } from 'vitest';
import { hostOnly, registrableDomain, sameSite } from '../../../src/upstream/auth/realm-policy.js';

describe('realm policy', () => {
  it('knows registrable domains by the public suffix list', () => {
    expect(registrableDomain('registry-1.docker.io')).toBe('docker.io');
    expect(registrableDomain('auth.docker.io:443')).toBe('docker.io');
    expect(registrableDomain('foo.bar.co.uk')).toBe('bar.co.uk');
    expect(registrableDomain('127.0.0.1')).toBeNull();
    expect(registrableDomain('localhost')).toBeNull();
  });

  it('lets a realm on the registry domain receive credentials, and nothing else', () => {
    expect(sameSite('auth.docker.io', 'registry-1.docker.io')).toBe(true);
    expect(sameSite('gitlab.com', 'registry.gitlab.com')).toBe(true);
    expect(sameSite('registry.example:5000', 'registry.example')).toBe(true);
    expect(sameSite('127.0.0.1', '127.0.0.1:8443')).toBe(true);
    // Not a last-two-labels guess: other tenants of a shared suffix are other sites.
    expect(sameSite('evil.github.io', 'registry.github.io')).toBe(false);
    expect(sameSite('bucket-a.s3.amazonaws.com', 'bucket-b.s3.amazonaws.com')).toBe(false);
    expect(sameSite('a.co.uk', 'b.co.uk')).toBe(false);
    expect(sameSite('auth.docker.io.evil.com', 'registry-1.docker.io')).toBe(false);
    expect(sameSite('127.0.0.1', '127.0.0.2')).toBe(false);
    expect(hostOnly('[::1]:443')).toBe('[::1]');
  });
});
