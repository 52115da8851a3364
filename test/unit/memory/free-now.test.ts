import { describe, expect, it } from 'vitest';
import { freeNow, ownsItsMemory } from '../../../src/memory/free-now.js';

describe('freeing a buffer now', () => {
  it('detaches a buffer that owns its memory (it reads as empty), once', () => {
    const buffer = Buffer.allocUnsafeSlow(256 * 1024).fill(1);
    expect(ownsItsMemory(buffer)).toBe(true);
    freeNow(buffer);
    expect(buffer.length).toBe(0);
    expect((buffer.buffer as ArrayBuffer).detached).toBe(true);
    expect(() => freeNow(buffer)).not.toThrow();
  });

  it('leaves alone a slice, the buffer it is a slice of, a slice of Node\'s shared pool and shared memory', () => {
    const whole = Buffer.allocUnsafeSlow(1024).fill(2);
    const slice = whole.subarray(0, 512);
    const pooled = Buffer.from('small');
    const shared = Buffer.from(new SharedArrayBuffer(64));
    for (const buffer of [slice, pooled, shared]) {
      expect(ownsItsMemory(buffer)).toBe(false);
      const length = buffer.length;
      freeNow(buffer);
      expect(buffer.length).toBe(length);
    }
    expect(whole.length).toBe(1024);
    expect(whole[1023]).toBe(2);
    expect(pooled.toString()).toBe('small');
  });
});
