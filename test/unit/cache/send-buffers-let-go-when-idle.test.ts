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
});
