import { describe, expect, it } from 'vitest';
import { expiry, TokenCache, type TokenAnswer } from '../../../src/upstream/auth/token-cache.js';

const clock = () => {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
};

describe('TokenCache', () => {
  it('keeps a token until shortly before it expires', async () => {
    const time = clock();
    const cache = new TokenCache({ now: time.now });
    let fetches = 0;
    const fetch = async (): Promise<TokenAnswer> => ({ token: `t${++fetches}`, expiresIn: 300 });
    expect(await cache.get('k', fetch)).toBe('t1');
    time.advance(269_000);
    expect(await cache.get('k', fetch)).toBe('t1');
    time.advance(2_000); // 271 s: inside the 30 s margin
    expect(await cache.get('k', fetch)).toBe('t2');
    expect(await cache.get('other', fetch)).toBe('t3');
  });

  it('makes one fetch for concurrent misses of a key, and does not cache a failure', async () => {
    const cache = new TokenCache();
    let fetches = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fetch = async (): Promise<TokenAnswer> => {
      fetches++;
      await gate;
      return { token: 'shared', expiresIn: 60 };
    };
    const all = Promise.all(Array.from({ length: 20 }, () => cache.get('k', fetch)));
    release();
    expect(await all).toEqual(Array(20).fill('shared'));
    expect(fetches).toBe(1);

    let attempts = 0;
    const failing = async (): Promise<TokenAnswer> => {
      attempts++;
      throw new Error('token endpoint down');
    };
    await expect(cache.get('f', failing)).rejects.toThrow('down');
    await expect(cache.get('f', failing)).rejects.toThrow('down');
    expect(attempts).toBe(2);
  });

  it('forgets a refused token, but not a newer one', async () => {
    const cache = new TokenCache();
    let n = 0;
    const fetch = async (): Promise<TokenAnswer> => ({ token: `t${++n}`, expiresIn: 300 });
    const first = await cache.get('k', fetch);
    cache.invalidate('k', first);
    const second = await cache.get('k', fetch);
    expect(second).toBe('t2');
    cache.invalidate('k', first); // a late 401 for the old token
    expect(await cache.get('k', fetch)).toBe('t2');
  });

  it('is bounded', async () => {
    const cache = new TokenCache({ maxEntries: 3 });
    for (let i = 0; i < 10; i++) await cache.get(`k${i}`, async () => ({ token: `t${i}`, expiresIn: 300 }));
    expect(cache.size).toBe(3);
  });
});

describe('expiry', () => {
  const start = Date.parse('2026-01-01T00:00:00Z');
  it('defaults to the spec 60 s and keeps a margin of a tenth of the lifetime, at most 30 s', () => {
    expect(expiry({ token: 't' }, start)).toBe(start + 54_000);
    expect(expiry({ token: 't', expiresIn: 3600 }, start)).toBe(start + 3_570_000);
    expect(expiry({ token: 't', expiresIn: -5 }, start)).toBe(start + 54_000);
  });

  it('counts from issued_at when that is earlier and plausible, never from a skewed clock', () => {
    expect(expiry({ token: 't', expiresIn: 300, issuedAt: '2025-12-31T23:59:00Z' }, start)).toBe(start - 60_000 + 270_000);
    // In the future (server clock ahead) or before the lifetime began (far behind): our own clock.
    expect(expiry({ token: 't', expiresIn: 300, issuedAt: '2026-01-01T01:00:00Z' }, start)).toBe(start + 270_000);
    expect(expiry({ token: 't', expiresIn: 300, issuedAt: '2025-12-31T00:00:00Z' }, start)).toBe(start + 270_000);
    expect(expiry({ token: 't', expiresIn: 300, issuedAt: 'yesterday' }, start)).toBe(start + 270_000);
  });
});
