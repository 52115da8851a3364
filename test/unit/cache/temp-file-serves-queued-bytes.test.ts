import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { IO_CHUNK } from '../../../src/cache/durable-files.js';
import { TempFile } from '../../../src/cache/temp-file.js';
import { tempDir } from './cache-fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function openTempFile(): Promise<{ file: TempFile; told: () => number }> {
  let told = 0;
  const file = new TempFile(join(await tempDir(), 'spool'), {
    written: () => (told += 1),
    failed: (error) => {
      throw error;
    },
    idleFailed: () => undefined,
  });
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
});
