import { expect, it } from 'vitest';
import { SWEEP_SETTLE_MS, collectAfterBurst, collectionsForTests } from '../../../src/memory/collect-after-burst.js';

/** Dead buffers outside the heap, as a burst of downloads leaves them: `count` of 64 KiB, promoted by surviving collections. */
async function leaveDeadBuffers(count: number): Promise<void> {
  let held: Buffer[] | undefined = Array.from({ length: count }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1));
  // Kept across a few turns so that they are old by the time they die.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  expect(held.length).toBe(count);
  held = undefined;
}

it('after a burst, one full collection gives the dead buffers back; not again within its interval, nor for a small burst', async () => {
  const start = performance.now();
  await leaveDeadBuffers(640);
  const withGarbage = process.memoryUsage().arrayBuffers;
  collectAfterBurst(start);
  expect(collectionsForTests()).toBe(1);
  // 40 MiB were dead: at least 32 of them go. V8 frees the buffers of a collection on a thread of
  // its own (concurrent sweeping), which a loaded machine may run a little later.
  const deadline = Date.now() + 30_000;
  while (withGarbage - process.memoryUsage().arrayBuffers <= 32 * 1024 * 1024 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(withGarbage - process.memoryUsage().arrayBuffers).toBeGreaterThan(32 * 1024 * 1024);
  // The level after the collection is read once its sweeping has settled; a burst that comes
  // sooner is measured against the level the collection itself saw.
  await new Promise((resolve) => setTimeout(resolve, SWEEP_SETTLE_MS + 50));

  // Within the interval: no second pause, however much is dead.
  await leaveDeadBuffers(640);
  collectAfterBurst(start + 5_000);
  expect(collectionsForTests()).toBe(1);
  collectAfterBurst(start + 10_001);
  expect(collectionsForTests()).toBe(2);

  // A burst that left little behind is not worth a pause.
  await leaveDeadBuffers(16);
  collectAfterBurst(start + 30_000);
  expect(collectionsForTests()).toBe(2);
});
