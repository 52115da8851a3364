import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { IO_CHUNK } from '../../../src/cache/durable-files.js';
import { TempFile, type TempFileOptions } from '../../../src/cache/temp-file.js';
import { tempDir } from './cache-fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function openTempFile(options: TempFileOptions = {}): Promise<{ file: TempFile; told: () => number }> {
  let told = 0;
  const file = new TempFile(
    join(await tempDir(), 'spool'),
    {
      written: () => (told += 1),
      failed: (error) => {
        throw error;
      },
      idleFailed: () => undefined,
    },
    options,
  );
  await file.create();
  return { file, told: () => told };
}

describe('a fill temp file', () => {
  it('hands out a chunk as soon as it is queued, before the 1 MiB write that takes it to disk', async () => {
    const { file, told } = await openTempFile();
    const first = randomBytes(1000);
    const second = randomBytes(500);
    await file.append(first);
    expect(told()).toBe(1);
    await file.append(second);
    expect(file.written).toBe(0);
    expect(file.available).toBe(1500);
    expect((await file.read(0, 1000)).equals(first)).toBe(true);
    expect((await file.read(1200, 300)).equals(second.subarray(200))).toBe(true);
    await file.flush();
    expect(file.written).toBe(1500);
    expect((await file.read(1000, 500)).equals(second)).toBe(true);
    await file.close();
  });

  it('reads back from disk what has left memory, and refuses what it does not have', async () => {
    const { file } = await openTempFile();
    const chunks = Array.from({ length: 12 }, () => randomBytes(512 * 1024));
    for (const chunk of chunks) await file.append(chunk);
    await file.flush();
    expect(file.available).toBe(6 * 1024 * 1024);
    expect((await file.read(0, 512 * 1024)).equals(chunks[0]!)).toBe(true);
    await expect(file.read(6 * 1024 * 1024, 1)).rejects.toThrow(/not in the temp file/);
    await file.close();
  });

  it('holds a chunk in memory only until it is written: a chunk kept longer is promoted, and only full collections free those', async () => {
    const { file } = await openTempFile();
    let chunk: Buffer | undefined = Buffer.alloc(IO_CHUNK + 1, 7);
    const held = new WeakRef(chunk);
    const queued = file.append(chunk);
    // Readable at once, from memory, before the write.
    expect(file.available).toBe(IO_CHUNK + 1);
    expect((await file.read(IO_CHUNK, 1))[0]).toBe(7);
    await queued;
    expect(file.written).toBe(IO_CHUNK + 1);
    chunk = undefined;
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(held.deref()).toBeUndefined();
    // Still readable: back from the file.
    const into = Buffer.alloc(10);
    expect(await file.readInto(IO_CHUNK - 5, into)).toBe(6);
    expect(into.subarray(0, 6).equals(Buffer.alloc(6, 7))).toBe(true);
    await file.close();
  });

  it('readInto copies queued bytes across the chunks they came in', async () => {
    const { file } = await openTempFile();
    void file.append(Buffer.from('abc'));
    void file.append(Buffer.from('defg'));
    const into = Buffer.alloc(6);
    expect(await file.readInto(1, into)).toBe(6);
    expect(into.toString()).toBe('bcdefg');
    await file.flush();
    const back = Buffer.alloc(16);
    expect(await file.readInto(0, back)).toBe(7);
    expect(back.subarray(0, 7).toString()).toBe('abcdefg');
    await file.close();
  });

  describe('freeing the chunks it was handed for good (an undici body)', () => {
    /** A chunk that is the whole of a buffer of its own, as undici's body chunks are. */
    const record = (fill: number): Buffer => Buffer.alloc(16 * 1024, fill);
    const freed = (chunk: Buffer): boolean => (chunk.buffer as ArrayBuffer).detached;

    it('frees a chunk once it is on disk and the fill is done with it, not before either', async () => {
      const { file } = await openTempFile({ freesChunks: true });
      const chunks = Array.from({ length: 64 }, (_, i) => record(i));
      await file.appendAll(chunks);
      // A full MiB: written at once, but the fill has not said it is done with them.
      expect(file.written).toBe(IO_CHUNK);
      expect(chunks.every((chunk) => chunk.length === 16 * 1024)).toBe(true);
      file.takenUpTo(IO_CHUNK / 2);
      expect(chunks.filter((chunk) => chunk.length === 0)).toHaveLength(32);
      file.takenUpTo(IO_CHUNK);
      expect(chunks.every(freed)).toBe(true);
      // What was freed is on disk, and read back from there.
      const back = Buffer.alloc(16 * 1024);
      expect(await file.readInto(63 * 16 * 1024, back)).toBe(16 * 1024);
      expect(back.equals(record(63))).toBe(true);
      await file.close();
    });

    it('keeps what is not on disk yet, slices of shared buffers, and every chunk of a file without the option', async () => {
      const { file } = await openTempFile({ freesChunks: true });
      const shared = Buffer.alloc(32 * 1024, 9);
      const queued = record(1);
      await file.appendAll([shared.subarray(0, 16 * 1024), queued]);
      file.takenUpTo(Number.MAX_SAFE_INTEGER);
      expect(queued.length).toBe(16 * 1024);
      await file.flush();
      expect(freed(queued)).toBe(true);
      expect(shared.length).toBe(32 * 1024);
      await file.close();

      const plain = await openTempFile();
      const kept = record(2);
      await plain.file.appendAll([kept]);
      await plain.file.flush();
      plain.file.takenUpTo(Number.MAX_SAFE_INTEGER);
      expect(freed(kept)).toBe(false);
      await plain.file.close();
    });

    it('hands out copies of queued bytes, which stay right after their chunk was freed', async () => {
      const { file } = await openTempFile({ freesChunks: true });
      const chunk = record(5);
      await file.appendAll([chunk]);
      const read = await file.read(0, 16 * 1024);
      file.takenUpTo(16 * 1024);
      await file.flush();
      expect(freed(chunk)).toBe(true);
      expect(read.equals(record(5))).toBe(true);
      await file.close();
    });
  });
});
