import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TempFile } from '../../../src/cache/temp-file.js';
import { tempDir } from './cache-fixture.js';

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
});
