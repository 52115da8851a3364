import { afterEach, describe, expect, it, vi } from 'vitest';
import { countedSend, freeSendBuffersForTests, giveBack, IDLE_RELEASE_MS, takeSendBuffer } from '../../../src/cache/send-buffers.js';

/** One download's send: takes `count` buffers, then hands them back as write callbacks would. */
async function sendWith(count: number): Promise<void> {
  await countedSend(async () => {
    const buffers = Array.from({ length: count }, () => takeSendBuffer());
    await Promise.resolve();
    for (const buffer of buffers) giveBack(buffer);
  });
}

describe('send buffers', () => {
  afterEach(() => void vi.useRealTimers());

  it('are kept for the next send, and let go once nothing was sent for a while', async () => {
    vi.useFakeTimers();
    await sendWith(2);
    expect(freeSendBuffersForTests()).toBe(2);
    // The next blob of a pull takes them again: nothing is let go in between.
    await vi.advanceTimersByTimeAsync(IDLE_RELEASE_MS / 2);
    await sendWith(3);
    expect(freeSendBuffersForTests()).toBe(3);
    await vi.advanceTimersByTimeAsync(IDLE_RELEASE_MS - 1);
    expect(freeSendBuffersForTests()).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(freeSendBuffersForTests()).toBe(0);
  });

  it('are not let go while a send is under way', async () => {
    vi.useFakeTimers();
    await sendWith(1);
    let finish!: () => void;
    const running = countedSend(() => new Promise<void>((resolve) => (finish = resolve)));
    await vi.advanceTimersByTimeAsync(IDLE_RELEASE_MS * 2);
    expect(freeSendBuffersForTests()).toBe(1);
    finish();
    await running;
    await vi.advanceTimersByTimeAsync(IDLE_RELEASE_MS);
    expect(freeSendBuffersForTests()).toBe(0);
  });

  it('free a buffer of a size sends no longer take, rather than keep it beside the ones they take', async () => {
    vi.useFakeTimers();
    let taken!: Buffer;
    let finishFirst!: () => void;
    const first = countedSend(async () => {
      taken = takeSendBuffer();
      await new Promise<void>((resolve) => (finishFirst = resolve));
      giveBack(taken);
    });
    expect(taken.length).toBe(256 * 1024);
    // Four more downloads: five share the budget and take buffers of another size.
    const finishers: Array<() => void> = [];
    const more = Array.from({ length: 4 }, () => countedSend(() => new Promise<void>((resolve) => finishers.push(resolve))));
    const smaller = takeSendBuffer();
    expect(smaller.length).toBe(512 * 1024);
    giveBack(smaller);
    expect(freeSendBuffersForTests()).toBe(1);
    finishFirst();
    await first;
    // Freed at once (its memory detached), not pooled beside the one sends take now.
    expect(taken.length).toBe(0);
    expect(freeSendBuffersForTests()).toBe(1);
    for (const finish of finishers) finish();
    await Promise.all(more);
    await vi.advanceTimersByTimeAsync(IDLE_RELEASE_MS);
    expect(freeSendBuffersForTests()).toBe(0);
  });
});
