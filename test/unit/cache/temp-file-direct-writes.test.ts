/**
 * A fill's temp file written with O_DIRECT (src/cache/direct-writes.ts): whole blocks from aligned
 * buffers, the end padded and cut back, the bytes of a part block held in memory until the end, and
 * none of it through the page cache. Checked on the real file system of the test's temp dir: the flags
 * of the writer's descriptor (/proc/self/fdinfo) and the file's pages in the page cache (fincore).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { readdir, readFile, readlink, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIRECT_BLOCK } from '../../../src/cache/direct-writes.js';
import { IO_CHUNK } from '../../../src/cache/durable-files.js';
import { TempFile, type TempFileOptions } from '../../../src/cache/temp-file.js';
import { tempDir } from './cache-fixture.js';

const TMPFS_MAGIC = 0x01021994;

async function openTempFile(options: TempFileOptions = {}): Promise<{ file: TempFile; path: string }> {
  const path = join(await tempDir(), 'spool');
  const file = new TempFile(
    path,
    {
      written: () => undefined,
      failed: (error) => {
        throw error;
      },
      idleFailed: () => undefined,
    },
    options,
  );
  await file.create();
  return { file, path };
}

/** The open flags of every descriptor of this process on `path`. */
async function flagsOf(path: string): Promise<number[]> {
  const flags: number[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== path) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
    flags.push(Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(info)![1]!, 8));
  }
  return flags;
}

/** Bytes of `path` in the page cache. */
function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

/** Chunks of awkward sizes, as an upstream's records and a body's last bytes come. */
function awkwardChunks(): Buffer[] {
  return [5000, 70_000, IO_CHUNK + 3, 12_345, 2 * IO_CHUNK, 1].map((size) => randomBytes(size));
}

describe('a fill temp file written with O_DIRECT', () => {
  it('writes whole blocks from the writer opened with O_DIRECT, the end padded and cut back to the blob', async () => {
    const { file, path } = await openTempFile();
    const chunks = awkwardChunks();
    const bytes = Buffer.concat(chunks);
    const flags = await flagsOf(path);
    // One descriptor writes with O_DIRECT, one reads back through the page cache.
    expect(flags).toHaveLength(2);
    expect(flags.filter((f) => (f & constants.O_DIRECT) !== 0)).toHaveLength(1);
    await file.appendAll(chunks);
    // Before the end only whole blocks are written; the rest waits in memory, readable there.
    expect(file.written % DIRECT_BLOCK).toBe(0);
    expect(file.written).toBeGreaterThan(0);
    expect(file.available).toBe(bytes.length);
    expect((await file.read(bytes.length - 1, 1))[0]).toBe(bytes[bytes.length - 1]);
    await file.flush();
    expect(file.written).toBe(bytes.length);
    expect((await stat(path)).size).toBe(bytes.length);
    expect((await readFile(path)).equals(bytes)).toBe(true);
    // Read back through the page cache at any position.
    const into = Buffer.alloc(100);
    expect(await file.readInto(IO_CHUNK + 7, into)).toBe(100);
    expect(into.equals(bytes.subarray(IO_CHUNK + 7, IO_CHUNK + 107))).toBe(true);
    await file.sync();
    await file.close();
  });

  // tmpfs takes O_DIRECT, but its pages are the page cache's whatever the flag.
  it.skipIf(process.platform !== 'linux')('leaves nothing in the page cache, where a buffered write leaves the whole file', async () => {
    const direct = await openTempFile();
    if ((await statfs(direct.path)).type === TMPFS_MAGIC) return void (await direct.file.close());
    await direct.file.appendAll(awkwardChunks());
    await direct.file.flush();
    expect(residentBytes(direct.path)).toBe(0);
    await direct.file.close();

    const buffered = await openTempFile({ direct: false });
    expect((await flagsOf(buffered.path)).map((f) => f & constants.O_DIRECT)).toEqual([0]);
    const chunks = awkwardChunks();
    await buffered.file.appendAll(chunks);
    await buffered.file.flush();
    expect(residentBytes(buffered.path)).toBeGreaterThanOrEqual(Buffer.concat(chunks).length);
    await buffered.file.close();
  });

  it('writes a blob of less than a block, and an empty one', async () => {
    const small = await openTempFile();
    const bytes = randomBytes(100);
    await small.file.append(bytes);
    expect(small.file.written).toBe(0);
    await small.file.flush();
    expect((await readFile(small.path)).equals(bytes)).toBe(true);
    await small.file.close();

    const empty = await openTempFile();
    await empty.file.flush();
    expect((await stat(empty.path)).size).toBe(0);
    await empty.file.close();
  });
});
