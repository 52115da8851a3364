import { describe, expect, test } from 'vitest';
import { LruMap } from '../../../src/tls/lru-map.js';

describe('LruMap', () => {
  test('drops the least recently used entry, where a get counts as use and a peek does not', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).toBe(1);
    map.set('c', 3);
    expect(map.peek('b')).toBeUndefined();
    expect(map.peek('a')).toBe(1);
    map.set('d', 4); // the peek above did not refresh 'a', so 'a' is now the oldest
    expect(map.peek('a')).toBeUndefined();
    expect(map.peek('c')).toBe(3);
    expect(map.size).toBe(2);
  });

  test('setting an existing key replaces it without evicting another', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('a', 3);
    expect([map.peek('a'), map.peek('b'), map.size]).toEqual([3, 2, 2]);
  });

  test('rejects a bound that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new LruMap(bad)).toThrow(RangeError);
  });
});
