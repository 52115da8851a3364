import { describe, expect, it } from 'vitest';
import { ClientNetworks } from '../../../src/dns/client-networks.js';

describe('ClientNetworks', () => {
  const networks = new ClientNetworks(['10.0.0.0/8', '192.0.2.5', 'fd00::/8', 'fe80::/10']);

  it('matches addresses inside the networks, bare addresses as single hosts', () => {
    expect(['10.1.2.3', '192.0.2.5', 'fd00::1', 'FD12::1'].filter((a) => networks.includes(a))).toHaveLength(4);
    expect(['11.0.0.1', '192.0.2.6', 'fe00::1', '2001:db8::1'].filter((a) => networks.includes(a))).toEqual([]);
  });

  it('matches IPv4-mapped IPv6 sources against the IPv4 networks, and link-local sources with a zone', () => {
    expect(networks.includes('::ffff:10.9.9.9')).toBe(true);
    expect(networks.includes('::ffff:11.9.9.9')).toBe(false);
    expect(networks.includes('fe80::1%eth0')).toBe(true);
  });

  it('matches nothing when empty, and refuses what is not a network', () => {
    expect(new ClientNetworks([]).includes('127.0.0.1')).toBe(false);
    expect(() => new ClientNetworks(['10.0.0.0/33'])).toThrow('not a network');
    expect(() => new ClientNetworks(['example.com'])).toThrow('not a network');
  });

  it('answers the same for a client asked about again, across a flood of other sources that fills its memory', () => {
    const list = new ClientNetworks(['10.0.0.0/8']);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 5000; i++) expect(list.includes(`${i % 2 ? 10 : 11}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)).toBe(i % 2 === 1);
      expect(list.includes('10.1.2.3')).toBe(true);
      expect(list.includes('11.1.2.3')).toBe(false);
    }
  });
});
