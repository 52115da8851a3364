/**
 * A fill runs at most a few MiB ahead of its fastest reader, so that the reader gets every byte from
 * memory instead of reading the temp file back; a reader that stops reading is left behind after the
 * reader patience, and the fill goes on without it (fills outlive their clients).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blob, meta, MiB, openCache, tally, until } from './cache-fixture.js';

/** A source that hands out `bytes` in 64 KiB chunks as it is read, counting what it handed out. */
function countedSource(bytes: Buffer): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (pulled >= bytes.length) return void this.push(null);
      const chunk = Buffer.from(bytes.subarray(pulled, pulled + 64 * 1024));
      pulled += chunk.length;
      this.push(chunk);
    },
  });
  return { stream, pulled: () => pulled };
}

/** Waits until `value` has not changed for 300 ms. */
async function settled(value: () => number): Promise<number> {
  let last = -1;
  while (value() !== last) {
    last = value();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return last;
}

describe('a fill and its readers', () => {
  it('waits for a reader that has not read yet, then goes on with it', async () => {
    const { cache } = await openCache({ readerPatienceMs: 60_000 });
    const { bytes, digest } = blob(32 * MiB + 5);
    const source = countedSource(bytes);
    const fill = cache.fill(digest, source.stream, meta({ size: bytes.length }));
    const reader = fill.reader();
    await until(() => source.pulled() > 0);
    // The reader has taken nothing: the fill holds at a few MiB (4 ahead, plus what the streams buffer).
    expect(await settled(source.pulled)).toBeLessThanOrEqual(8 * MiB);
    expect(fill.verified).toBe(false);
    const read = tally(reader);
    expect((await read.ended).equals(bytes)).toBe(true);
    await expect(fill.done).resolves.toMatchObject({ digest, size: bytes.length });
  });

  it('keeps pace with the fastest reader, not with one that stopped', async () => {
    const { cache } = await openCache({ readerPatienceMs: 60_000 });
    const { bytes, digest } = blob(32 * MiB + 5);
    const source = countedSource(bytes);
    const fill = cache.fill(digest, source.stream, meta({ size: bytes.length }));
    const stopped = fill.reader();
    const reading = tally(fill.reader());
    // The slow one was left behind once; the fill follows the one that reads, to the end.
    expect((await reading.ended).equals(bytes)).toBe(true);
    await fill.done;
    expect((await tally(stopped).ended).equals(bytes)).toBe(true);
  });

  it('leaves behind a reader that keeps it waiting longer than the patience, and commits without it', async () => {
    const { cache } = await openCache({ readerPatienceMs: 50 });
    const { bytes, digest } = blob(32 * MiB + 5);
    const source = countedSource(bytes);
    const fill = cache.fill(digest, source.stream, meta({ size: bytes.length }));
    const reader = fill.reader();
    await expect(fill.done).resolves.toMatchObject({ digest, size: bytes.length });
    expect(source.pulled()).toBe(bytes.length);
    // Read from the file afterwards, every byte.
    expect((await tally(reader).ended).equals(bytes)).toBe(true);
  });
});
