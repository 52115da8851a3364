import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { FillError } from '../../../src/cache/fill-error.js';
import { verifiedRelay } from '../../../src/peers/verified-relay.js';
import type { Digest } from '../../../src/registry/digest.js';

const digestOf = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
const chunksOf = (bytes: Buffer, size = 1000): Buffer[] => Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

/** What came out of the relay, and how it ended. */
async function relay(chunks: Buffer[], digest: Digest, size: number | undefined): Promise<{ out: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  const sink = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) out.push(chunk);
  };
  const error = await pipeline(Readable.from(chunks), verifiedRelay(digest, size), sink).then(() => undefined, (e: unknown) => e);
  return { out: Buffer.concat(out), error };
}

describe('verifiedRelay', () => {
  const bytes = randomBytes(10_500);

  it('passes the blob through whole when it matches, with or without a known size', async () => {
    for (const size of [bytes.length, undefined]) {
      const { out, error } = await relay(chunksOf(bytes), digestOf(bytes), size);
      expect(error).toBeUndefined();
      expect(out.equals(bytes)).toBe(true);
    }
  });

  it('never lets the end of wrong bytes through', async () => {
    const wrong = Buffer.from(bytes);
    wrong[wrong.length - 1]! ^= 1;
    const { out, error } = await relay(chunksOf(wrong), digestOf(bytes), bytes.length);
    expect((error as FillError).reason).toBe('digest-mismatch');
    expect(out.length).toBeLessThan(bytes.length);
  });

  it('fails a body cut short or running long, before its last chunk', async () => {
    const short = await relay(chunksOf(bytes.subarray(0, 9_000)), digestOf(bytes), bytes.length);
    expect((short.error as FillError).reason).toBe('truncated');
    expect(short.out.length).toBeLessThan(9_000);
    const long = await relay(chunksOf(Buffer.concat([bytes, Buffer.from('x')])), digestOf(bytes), bytes.length);
    expect((long.error as FillError).reason).toBe('size-mismatch');
    expect(long.out.length).toBeLessThan(bytes.length);
  });
});
