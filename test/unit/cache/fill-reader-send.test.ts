import { setImmediate as turn } from 'node:timers/promises';
import type { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blob, handSource, meta, MiB, openCache, tally, until } from './cache-fixture.js';
import { serve } from './response-fixture.js';

const RECORD = 16 * 1024;

/** Feeds `bytes` the way an upstream's TLS socket hands them over: 16 KiB at a time, a turn of the event loop apart. */
async function feed(source: PassThrough, bytes: Buffer, end = true): Promise<void> {
  for (let offset = 0; offset < bytes.length; offset += RECORD) {
    if (!source.write(bytes.subarray(offset, offset + RECORD))) await new Promise((resolve) => source.once('drain', resolve));
    await turn();
  }
  if (end) source.end();
}

describe('a fill follower piped into a response', () => {
  it('sends every byte in order to a slow client, gathered into writes far larger than the 16 KiB chunks that came', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(8 * MiB + 77);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const served = await serve(fill.reader());
    await feed(source, bytes);
    expect((await served.body).equals(bytes)).toBe(true);
    expect(await served.failure).toBeNull();
    await fill.done;
    const chunks = Math.ceil(bytes.length / RECORD);
    // One write per chunk before; now a write waits (briefly) for 256 KiB once the first byte is out.
    expect(served.writes.length).toBeLessThan(chunks / 4);
    expect(served.writes[0]).toBeGreaterThan(0);
  });

  it('a follower that joins late reads what was written back from the file, then follows to the end', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(6 * MiB + 3);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const early = await serve(fill.reader());
    await feed(source, bytes.subarray(0, 4 * MiB), false);
    const late = await serve(fill.reader());
    await feed(source, bytes.subarray(4 * MiB));
    expect((await early.body).equals(bytes)).toBe(true);
    expect((await late.body).equals(bytes)).toBe(true);
    await fill.done;
  });

  it('never completes a body whose digest does not match: the response is cut off short', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(3 * MiB);
    const bad = Buffer.from(bytes);
    bad[bad.length - 1]! ^= 1;
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const served = await serve(fill.reader());
    await feed(source, bad);
    await expect(fill.done).rejects.toMatchObject({ reason: 'digest-mismatch' });
    expect((await served.failure)?.message).toMatch(/does not match/);
    await expect(served.body).rejects.toThrow();
  });

  it('holds back the newest byte while the body is short of its announced length: a blob whose upstream stops there never reaches a client whole', async () => {
    const { cache } = await openCache();
    const { bytes, digest } = blob(2 * MiB + 3);
    const source = handSource();
    // The upstream announces 10 bytes more than the blob, sends the blob, then ends.
    const fill = cache.fill(digest, source, meta({ size: bytes.length + 10 }));
    const served = await serve(fill.reader());
    const read = tally(fill.reader());
    await feed(source, bytes, false);
    const sent = (): number => served.writes.reduce((sum, length) => sum + length, 0);
    await until(() => sent() === bytes.length - 1 && read.bytes().length === bytes.length - 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sent()).toBe(bytes.length - 1);
    expect(read.bytes().length).toBe(bytes.length - 1);
    source.end();
    await expect(fill.done).rejects.toMatchObject({ reason: 'truncated' });
    await expect(served.body).rejects.toThrow();
    await expect(read.ended).rejects.toMatchObject({ reason: 'truncated' });
  });
});
