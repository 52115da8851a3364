import { describe, expect, it } from 'vitest';
import { ByteWindow } from '../../../src/cache/byte-window.js';

const bytes = (from: number, length: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (from + i) % 256));

describe('ByteWindow', () => {
  it('answers any position it holds out of the chunk that holds it, without copying', () => {
    const window = new ByteWindow(1000);
    const chunks = [bytes(1000, 10), bytes(1010, 1), bytes(1011, 30)];
    for (const chunk of chunks) window.append(chunk);
    window.append(Buffer.alloc(0));
    expect([window.start, window.end]).toEqual([1000, 1041]);
    for (let position = 1000; position < 1041; position++) {
      expect(window.slice(position, 1)).toEqual(bytes(position, 1));
    }
    // Never past the end of one chunk, nor past `length`.
    expect(window.slice(1005, 100)).toEqual(bytes(1005, 5));
    expect(window.slice(1011, 4)).toEqual(bytes(1011, 4));
    expect(window.slice(1012, 100).buffer).toBe(chunks[2]!.buffer);
    expect(() => window.slice(999, 1)).toThrow(RangeError);
    expect(() => window.slice(1041, 1)).toThrow(RangeError);
  });

  it('lets go of whole chunks only, those that end at or before the position', () => {
    const window = new ByteWindow(0);
    for (let i = 0; i < 5; i++) window.append(bytes(i * 10, 10));
    window.trimTo(15);
    expect(window.start).toBe(10);
    expect(window.slice(10, 10)).toEqual(bytes(10, 10));
    window.trimTo(20);
    expect(window.start).toBe(20);
    window.trimTo(50);
    expect([window.start, window.end]).toEqual([50, 50]);
    window.append(bytes(50, 3));
    expect(window.slice(51, 9)).toEqual(bytes(51, 2));
  });

  it('stays right across compactions of many small chunks', () => {
    const window = new ByteWindow(0);
    let trimmed = 0;
    for (let i = 0; i < 5000; i++) {
      window.append(bytes(i * 7, 7));
      if (i % 3 === 0) {
        trimmed = i * 7 - 100;
        window.trimTo(trimmed);
      }
    }
    expect(window.start).toBeLessThanOrEqual(Math.max(0, trimmed));
    for (let position = window.start; position < window.end; position += 13) {
      expect(window.slice(position, 1)).toEqual(bytes(position, 1));
    }
  });
});
