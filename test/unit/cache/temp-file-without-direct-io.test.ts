/**
 * A file system that refuses O_DIRECT (ramfs, mounted for the test: needs root): the temp file is
 * written through the page cache instead, and so is every later one (the refusal is remembered).
 * A file of its own, since that memory is the process's.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { directWritesWanted } from '../../../src/cache/direct-writes.js';
import { IO_CHUNK } from '../../../src/cache/durable-files.js';
import { TempFile } from '../../../src/cache/temp-file.js';

function tempFileIn(dir: string, name: string): TempFile {
  return new TempFile(join(dir, name), {
    written: () => undefined,
    failed: (error) => {
      throw error;
    },
    idleFailed: () => undefined,
  });
}

// Mounting ramfs needs root (CI runs as root; so does `npm test` here).
describe.skipIf(process.getuid?.() !== 0)('a fill temp file on a file system without O_DIRECT', () => {
  it('is written through the page cache, and so is every later one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layover-ramfs-'));
    execFileSync('mount', ['-t', 'ramfs', 'ramfs', dir]);
    onTestFinished(async () => {
      execFileSync('umount', ['-l', dir]);
      await rm(dir, { recursive: true, force: true });
    });
    expect(constants.O_DIRECT).toBeGreaterThan(0);
    expect(directWritesWanted()).toBe(true);
    const first = tempFileIn(dir, 'first');
    await first.create();
    expect(directWritesWanted()).toBe(false);
    const bytes = randomBytes(IO_CHUNK + 5);
    await first.append(bytes);
    // Not held back to a whole block: the page cache takes any length.
    expect(first.written).toBe(IO_CHUNK + 5);
    await first.flush();
    expect((await readFile(join(dir, 'first'))).equals(bytes)).toBe(true);
    await first.close();

    const second = tempFileIn(dir, 'second');
    await second.create();
    await second.append(bytes.subarray(0, 10));
    await second.flush();
    expect((await readFile(join(dir, 'second'))).equals(bytes.subarray(0, 10))).toBe(true);
    await second.close();
  });
});
