import { expect, it } from 'vitest';
import { BufferPool } from '../../../src/cache/buffer-pool.js';

const detached = (buffer: Buffer): boolean => (buffer.buffer as ArrayBuffer).detached;

it('a buffer given back to a full pool is freed at once; the ones kept are handed out intact', () => {
  const pool = new BufferPool(4096, 1);
  const kept = pool.take().fill(1);
  const dropped = pool.take().fill(2);
  pool.give(kept);
  pool.give(dropped);
  expect(detached(dropped)).toBe(true);
  expect(detached(kept)).toBe(false);
  const again = pool.take();
  expect(again).toBe(kept);
  expect(again.every((byte) => byte === 1)).toBe(true);
});

it('clear frees every free buffer; a buffer of another size is neither kept nor freed', () => {
  const pool = new BufferPool(4096, 4);
  const buffers = [pool.take(), pool.take()];
  for (const buffer of buffers) pool.give(buffer);
  const foreign = Buffer.allocUnsafeSlow(1024);
  pool.give(foreign);
  expect(pool.freeCount).toBe(2);
  pool.clear();
  expect(pool.freeCount).toBe(0);
  expect(buffers.every(detached)).toBe(true);
  expect(detached(foreign)).toBe(false);
  // Freed buffers are not handed out again: a new one comes.
  expect(pool.take().length).toBe(4096);
});
