import { describe, expect, it } from 'vitest';
import type { BlobEntry } from '../../../src/cache/blob-cache.js';
import { LruIndex } from '../../../src/cache/lru-index.js';
import type { Digest } from '../../../src/registry/digest.js';

function entry(name: string, size: number, lastAccess: number): BlobEntry {
  return { digest: `sha256:${name.repeat(64).slice(0, 64)}` as Digest, size, mediaType: null, kind: 'blob', created: 0, lastAccess, source: 's' };
}

describe('LruIndex', () => {
  it('loads in access order and keeps the byte total', () => {
    const lru = new LruIndex();
    const [a, b, c] = [entry('a', 10, 3), entry('b', 20, 1), entry('c', 30, 2)];
    lru.load([a, b, c]);
    expect(lru.oldestFirst().map((e) => e.size)).toEqual([20, 30, 10]);
    expect(lru.totalBytes).toBe(60);
    lru.insert({ ...b, size: 5 });
    expect(lru.totalBytes).toBe(45);
    expect(lru.newestFirst()[0]!.size).toBe(5);
  });

  it('touch moves an entry to the recent end and never moves time backwards', () => {
    const lru = new LruIndex();
    const [a, b] = [entry('a', 1, 100), entry('b', 1, 200)];
    lru.load([a, b]);
    lru.touch(a.digest, 50);
    expect(lru.newestFirst()[0]).toBe(a);
    expect(a.lastAccess).toBe(100);
  });

  it('takes victims strictly oldest first, pinned ones included (their files wait for the reader)', () => {
    const lru = new LruIndex();
    const [a, b, c] = [entry('a', 10, 1), entry('b', 10, 2), entry('c', 10, 3)];
    lru.load([a, b, c]);
    lru.pin(a.digest);
    lru.pin(a.digest);
    expect(lru.takeVictims(15).map((e) => e.digest)).toEqual([a.digest, b.digest]);
    expect(lru.totalBytes).toBe(10);
    expect(lru.unpin(a.digest)).toBe(1);
    expect(lru.isPinned(a.digest)).toBe(true);
    expect(lru.unpin(a.digest)).toBe(0);
    expect(lru.takeVictims(0).map((e) => e.digest)).toEqual([c.digest]);
    expect(lru.count).toBe(0);
  });
});
