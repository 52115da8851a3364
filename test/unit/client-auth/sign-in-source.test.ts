import { expect, it } from 'vitest';
import { signInSource } from '../../../src/client-auth/sign-in-source.js';

it('names an IPv4 client by its address, an IPv6 client by its /56, an unknown one by nothing', () => {
  expect(signInSource('192.0.2.7')).toBe('192.0.2.7');
  expect(signInSource('::ffff:192.0.2.7')).toBe('192.0.2.7');
  // A home or a host is often given a /56 (256 /64s): every address in it is one source.
  expect(signInSource('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:0/56');
  expect(signInSource('2001:DB8:1:ff:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:0/56');
  expect(signInSource('2001:db8:1:100::1')).toBe('2001:db8:1:1/56');
  expect(signInSource('2001:db8:1:100::1')).not.toBe(signInSource('2001:db8:1:ff::1'));
  expect(signInSource('fe80::1%eth0')).toBe('fe80:0:0:0/56');
  expect(signInSource('::1')).toBe('0:0:0:0/56');
  expect(signInSource(undefined)).toBe('');
});
