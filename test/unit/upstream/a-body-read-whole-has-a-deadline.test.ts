/**
 * Bodies read whole (manifests, tag lists, upstream errors) have a deadline from the first byte to the
 * last, besides their size limit: an upstream that drips its body a byte at a time kept the buffer,
 * and the upstream's read timeout (silence between chunks) never fired.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { asOciError } from '../../../src/proxy/error-handler.js';
import { readBounded } from '../../../src/upstream/auth/token-client.js';
import { BodyDeadlineError, readLimited, WHOLE_BODY_DEADLINE_MS } from '../../../src/upstream/read-limited.js';

describe('readLimited', () => {
  it('rejects a body that is still arriving at its deadline with a 504, and destroys the stream', async () => {
    const body = new PassThrough();
    const drip = setInterval(() => body.write('x'), 10);
    try {
      const read = readLimited(body, 1024, 150);
      const error = await read.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BodyDeadlineError);
      // A client gets it as a 504 in the OCI error format, not as an unexpected 500.
      expect(asOciError(error)).toMatchObject({ oci: { status: 504, code: 'UNKNOWN' }, unexpected: false });
      expect(body.destroyed).toBe(true);
    } finally {
      clearInterval(drip);
    }
  });

  it('reads a body that ends in time whole, and one past the limit as null', async () => {
    const whole = new PassThrough();
    setTimeout(() => whole.end('manifest'), 20);
    expect((await readLimited(whole, 1024, 1_000))?.toString()).toBe('manifest');
    const large = new PassThrough();
    large.end(Buffer.alloc(2048));
    expect(await readLimited(large, 1024, 1_000)).toBeNull();
  });
});

describe('token answers (readBounded)', () => {
  it('give up at the deadline of bodies read whole', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const body = new PassThrough();
      body.write('{"token":"');
      const read = readBounded(body as unknown as Parameters<typeof readBounded>[0]).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(WHOLE_BODY_DEADLINE_MS - 1);
      expect(body.destroyed).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(body.destroyed).toBe(true);
      expect(await read).toBeInstanceOf(BodyDeadlineError);
    } finally {
      vi.useRealTimers();
    }
  });
});
