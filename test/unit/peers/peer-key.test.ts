import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PeerKey } from '../../../src/peers/peer-key.js';

const caKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

describe('PeerKey', () => {
  const key = PeerKey.fromCa(caKey());
  const path = '/layover/peer/blobs/sha256:' + 'a'.repeat(64);

  it('accepts its own fresh signature of the same method and path', () => {
    expect(key.verify('GET', path, key.sign('GET', path))).toBe(true);
  });

  it('is the same for every replica of one CA, and another CA\'s key is refused', () => {
    const shared = caKey();
    expect(PeerKey.fromCa(shared).verify('GET', path, PeerKey.fromCa(shared).sign('GET', path))).toBe(true);
    expect(key.verify('GET', path, PeerKey.fromCa(caKey()).sign('GET', path))).toBe(false);
  });

  it('refuses a signature moved to another path or method, altered, expired, or from too far ahead', () => {
    const signature = key.sign('GET', path);
    expect(key.verify('GET', path.replace('a', 'b'), signature)).toBe(false);
    expect(key.verify('HEAD', path, signature)).toBe(false);
    const [expires, mac] = signature.split('.');
    expect(key.verify('GET', path, `${expires}.${mac!.replace(/^./, (c) => (c === '0' ? '1' : '0'))}`)).toBe(false);
    expect(key.verify('GET', path, `${Number(expires) + 1}.${mac}`)).toBe(false);
    const now = Date.now();
    expect(key.verify('GET', path, key.sign('GET', path, now - 60_000), now)).toBe(false);
    expect(key.verify('GET', path, key.sign('GET', path, now + 120_000), now)).toBe(false);
  });

  it('refuses what is not a signature at all', () => {
    for (const header of [undefined, '', 'x', ['1.2', '3.4'], `${Date.now() + 1000}.${'z'.repeat(64)}`, `${'9'.repeat(16)}.${'a'.repeat(64)}`]) {
      expect(key.verify('GET', path, header)).toBe(false);
    }
  });
});
