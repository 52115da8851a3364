import { describe, expect, it } from 'vitest';
import { parseByteRange } from '../../../src/proxy/byte-range.js';

describe('parseByteRange', () => {
  it.each([
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=50-5000', 100, { start: 50, end: 99 }],
  ])('%s of %d', (header, size, range) => expect(parseByteRange(header, size)).toEqual(range));

  it.each(['bytes=100-', 'bytes=5-2', 'bytes=-0', `bytes=${'9'.repeat(30)}-`])('%s of 100 is unsatisfiable', (header) => {
    expect(parseByteRange(header, 100)).toBe('unsatisfiable');
  });

  it.each([undefined, '', 'items=0-1', 'bytes=0-1,5-6', 'bytes=-', 'bytes=a-b'])('ignores %j', (header) => {
    expect(parseByteRange(header, 100)).toBeNull();
  });
});
