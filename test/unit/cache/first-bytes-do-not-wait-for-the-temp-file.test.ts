/**
 * A cold blob's first bytes reach its readers while the fill's temp file is still being created
 * (creating a file costs a millisecond or two, part of every cold first byte). The file is created on
 * libuv's thread pool, which this test keeps busy: each of its threads is blocked opening a FIFO that
 * has no writer yet, so the temp file cannot exist until the test opens the FIFOs for writing.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { blob, handSource, meta, openCache, tally, tempDir, until } from './cache-fixture.js';

/** Blocks every thread of the pool; the returned function frees them (once; later calls do nothing). */
async function holdThreadPool(): Promise<() => Promise<void>> {
  const dir = await tempDir();
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo-${i}`));
  execFileSync('mkfifo', fifos);
  // Opening a FIFO for reading waits for a writer, on a thread of the pool.
  const opening = fifos.map((fifo) => open(fifo, 'r'));
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    // Each FIFO has its reader waiting, so opening it for writing does not block.
    for (const fifo of fifos) closeSync(openSync(fifo, 'w'));
    for (const handle of await Promise.all(opening)) await handle.close();
  };
}

it('a fill hands its first bytes to its readers before its temp file exists, then commits as usual', async () => {
  const opened = await openCache();
  const { bytes, digest } = blob(256 * 1024);
  const release = await holdThreadPool();
  try {
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.write(bytes.subarray(0, 64 * 1024));
    // All but the newest byte, which waits for the next one or for the digest.
    await until(() => reader.bytes().length === 64 * 1024 - 1);
    expect(reader.bytes().equals(bytes.subarray(0, 64 * 1024 - 1))).toBe(true);
    // The thread pool is held: the temp file cannot have been created (readdirSync does not use the pool).
    expect(readdirSync(join(opened.dir, 'tmp'))).toEqual([]);
    source.end(bytes.subarray(64 * 1024));
    await release();
    expect((await reader.ended).equals(bytes)).toBe(true);
    await fill.done;
    expect(opened.cache.stat(digest)?.size).toBe(bytes.length);
  } finally {
    await release().catch(() => undefined);
  }
});
