/**
 * A fill whose temp file fails mid-way (a full disk): the fill is dropped from the cache, but the readers
 * it already had get every byte, from memory past the point of failure, and the final byte only once the
 * digest matched. The disk is real: a tmpfs mounted on the cache's tmp/ directory (needs root), where
 * exactly 1 MiB fits, so the fill's second 1 MiB write fails with ENOSPC.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { BlobCacheOptions, Fill, FillError } from '../../../src/cache/blob-cache.js';
import type { Digest } from '../../../src/registry/digest.js';
import { blob, collect, handSource, meta, MiB, openCache, tally, until } from './cache-fixture.js';
import { serve } from './response-fixture.js';

/** A cache whose tmp/ is a tmpfs mounted with `mountOptions`; closed, unmounted and removed when the test ends. */
async function openCacheOnSmallDisk(mountOptions = 'size=1m', options: Partial<BlobCacheOptions> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'layover-cache-full-'));
  const dir = join(root, 'cache');
  const opened = await openCache({ dir, ...options });
  const tmp = join(dir, 'tmp');
  execFileSync('mount', ['-t', 'tmpfs', '-o', mountOptions, 'tmpfs', tmp]);
  onTestFinished(async () => {
    await opened.cache.close();
    execFileSync('umount', ['-l', tmp]);
    await rm(root, { recursive: true, force: true });
  });
  return { ...opened, tmp };
}

/** Fills until the first 1 MiB is on disk and `ahead` has read it, then sends the write that cannot fit. */
async function failTheDisk(source: NodeJS.WritableStream, bytes: Buffer, ahead: { bytes: () => Buffer }, fill: Fill): Promise<FillError> {
  source.write(bytes.subarray(0, MiB));
  // All of it, or all but the final byte for a blob of unknown size (that byte might be the last).
  await until(() => ahead.bytes().length >= MiB - 1);
  source.write(bytes.subarray(MiB, 2 * MiB));
  const error = (await fill.done.catch((e: unknown) => e)) as FillError;
  expect(error).toMatchObject({ name: 'FillError', reason: 'io-error' });
  expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
  return error;
}

/** Dropped from the cache: no temp file, no entry, no active fill, one line that says so. */
async function expectDropped(opened: { cache: { stat(d: Digest): unknown; activeFill(d: Digest): unknown }; tmp: string; logs: { msg: string }[] }, digest: Digest) {
  expect(await readdir(opened.tmp)).toEqual([]);
  expect(opened.cache.stat(digest)).toBeUndefined();
  expect(opened.cache.activeFill(digest)).toBeUndefined();
  expect(opened.logs.filter((l) => l.msg === 'cache fill dropped')).toHaveLength(1);
}

// A real full disk needs a tmpfs mount, which needs root (CI runs as root; so does `npm test` here).
describe.skipIf(process.getuid?.() !== 0)('a fill whose disk is full', () => {
  it.each([
    ['with a known size', true],
    ['without a size', false],
  ])('a reader at the write offset goes on from memory and gets every byte (%s)', async (_name, known) => {
    const opened = await openCacheOnSmallDisk();
    const { cache, logs } = opened;
    const { bytes, digest } = blob(4 * MiB + 7);
    const source = handSource();
    const fill = cache.fill(digest, source, meta(known ? { size: bytes.length } : {}));
    const reader = tally(fill.reader());
    await failTheDisk(source, bytes, reader, fill);
    // Past the point of failure, before the body has ended.
    await until(() => reader.bytes().length >= 2 * MiB - 1);
    await expectDropped(opened, digest);
    expect(logs.find((l) => l.msg === 'cache fill dropped')).toMatchObject({ digest, reason: 'io-error', relay: true, readers: 1 });
    // Every byte arrives but the body has not ended: the final one waits for the digest.
    source.write(bytes.subarray(2 * MiB));
    await until(() => reader.bytes().length === bytes.length - 1);
    await sleep(50);
    expect(reader.bytes().length).toBe(bytes.length - 1);
    source.end();
    expect((await reader.ended).equals(bytes)).toBe(true);
    expect(cache.stat(digest)).toBeUndefined();
    expect(logs.filter((l) => l.msg === 'cache fill dropped')).toHaveLength(1);
  });

  it('a reader piped into a response goes on from memory too: its client gets every byte', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(4 * MiB + 7);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const served = await serve(fill.reader());
    const sent = (): number => served.writes.reduce((sum, length) => sum + length, 0);
    await failTheDisk(source, bytes, { bytes: () => Buffer.alloc(sent()) }, fill);
    await expectDropped(opened, digest);
    source.end(bytes.subarray(2 * MiB));
    expect((await served.body).equals(bytes)).toBe(true);
    expect(await served.failure).toBeNull();
  });

  it('a reader behind the write offset reads the written part from the file, then goes on from memory', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(4 * MiB + 7);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    // Asks for nothing until after the failure: it is still at 0, and a range reader from the middle of the file.
    const behind = fill.reader();
    const middle = fill.reader({ start: MiB / 2, end: 3 * MiB });
    const ahead = tally(fill.reader());
    await failTheDisk(source, bytes, ahead, fill);
    source.end(bytes.subarray(2 * MiB));
    expect((await ahead.ended).equals(bytes)).toBe(true);
    expect((await collect(behind)).equals(bytes)).toBe(true);
    expect((await collect(middle)).equals(bytes.subarray(MiB / 2, 3 * MiB + 1))).toBe(true);
    await expectDropped(opened, digest);
  });

  it('the space of the written part comes back once no reader needs it', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const behind = fill.reader();
    await failTheDisk(source, bytes, tally(fill.reader()), fill);
    const diskFree = async () => {
      const { bfree, blocks } = await statfs(opened.tmp);
      return bfree === blocks;
    };
    // Unlinked, but `behind` still needs what was written.
    await sleep(50);
    expect(await diskFree()).toBe(false);
    const late = tally(behind);
    await until(() => late.bytes().length > MiB);
    // Closed before the body has ended.
    await vi.waitFor(async () => expect(await diskFree()).toBe(true));
    source.end(bytes.subarray(2 * MiB));
    expect((await late.ended).equals(bytes)).toBe(true);
  });

  it('a reader asked for after the failure does not join the dropped fill; a new fill serves it', async () => {
    const opened = await openCacheOnSmallDisk();
    const { cache } = opened;
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const first = tally(fill.reader());
    await failTheDisk(source, bytes, first, fill);
    await expect(collect(fill.reader())).rejects.toMatchObject({ reason: 'io-error' });
    expect(cache.activeFill(digest)).toBeUndefined();
    // What the blob route does for a miss without an active fill: its own download, its own fill.
    const again = cache.fill(digest, Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]), meta({ size: bytes.length }));
    expect(again).not.toBe(fill);
    const second = tally(again.reader());
    source.end(bytes.subarray(2 * MiB));
    expect((await first.ended).equals(bytes)).toBe(true);
    expect((await second.ended).equals(bytes)).toBe(true);
    // The disk is still full while the first relay holds its file, so the second fill is dropped too (or fits).
    await again.done.catch(() => undefined);
  });

  it.each([
    ['with a known size', true],
    ['without a size', false],
  ])('a lying upstream after the failure never yields the final byte (%s)', async (_name, known) => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(3 * MiB);
    const lie = Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])]);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta(known ? { size: bytes.length } : {}));
    const reader = tally(fill.reader());
    await failTheDisk(source, lie, reader, fill);
    source.end(lie.subarray(2 * MiB));
    await expect(reader.ended).rejects.toMatchObject({ reason: 'digest-mismatch' });
    expect(reader.bytes().length).toBe(bytes.length - 1);
    expect(reader.bytes().equals(bytes.subarray(0, -1))).toBe(true);
    await expectDropped(opened, digest);
    expect(opened.logs.find((l) => l.msg === 'dropped cache fill: relay to its readers failed')).toMatchObject({ reason: 'digest-mismatch' });
  });

  it('a source that fails after the failure fails its readers', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    await failTheDisk(source, bytes, reader, fill);
    source.destroy(new Error('ECONNRESET'));
    await expect(reader.ended).rejects.toMatchObject({ reason: 'source-error' });
    await expectDropped(opened, digest);
  });

  it('when the last reader leaves, the relay stops and lets go of its source', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = fill.reader();
    await failTheDisk(source, bytes, tally(reader), fill);
    reader.destroy();
    await until(() => source.destroyed);
    await expectDropped(opened, digest);
  });

  it('a write error with no reader is an ordinary drop', async () => {
    const opened = await openCacheOnSmallDisk();
    const { bytes, digest } = blob(3 * MiB);
    const fill = opened.cache.fill(digest, Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]), meta({ size: bytes.length }));
    await expect(fill.done).rejects.toMatchObject({ reason: 'io-error' });
    await expectDropped(opened, digest);
    expect(opened.logs.find((l) => l.msg === 'cache fill dropped')).not.toHaveProperty('relay');
  });

  it('a temp file that cannot even be created: the readers get the blob from memory alone', async () => {
    const opened = await openCacheOnSmallDisk('size=1m,nr_inodes=1');
    const { bytes, digest } = blob(3 * MiB);
    const source = handSource();
    const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    await expect(fill.done).rejects.toMatchObject({ reason: 'io-error', cause: { code: 'ENOSPC' } });
    source.end(bytes);
    expect((await reader.ended).equals(bytes)).toBe(true);
    await expectDropped(opened, digest);
  });

  describe('memory stays bounded', () => {
    it('a slow reader holds the source back once it trails by the relay window, then catches up', async () => {
      const opened = await openCacheOnSmallDisk('size=1m', { relayWindowBytes: MiB });
      const { bytes, digest } = blob(8 * MiB);
      const source = handSource();
      const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
      const slow = fill.reader();
      const fast = tally(fill.reader());
      await failTheDisk(source, bytes, fast, fill);
      const rest = Readable.from(chunks(bytes.subarray(2 * MiB), 64 * 1024));
      rest.pipe(source);
      await sleep(200);
      // The source waits for `slow`, still at 0: 1 MiB of relay plus what the streams buffer, not the blob.
      const got = fast.bytes().length;
      expect(got).toBeLessThan(5 * MiB);
      expect(rest.readableEnded).toBe(false);
      expect((await collect(slow)).equals(bytes)).toBe(true);
      expect((await fast.ended).equals(bytes)).toBe(true);
    });

    it('a reader that stops reading is cut off after the stall timeout; the others go on', async () => {
      const opened = await openCacheOnSmallDisk('size=1m', { relayWindowBytes: MiB, stallTimeoutMs: 300 });
      const { bytes, digest } = blob(8 * MiB);
      const source = handSource();
      const fill = opened.cache.fill(digest, source, meta({ size: bytes.length }));
      const stuck = fill.reader();
      const stuckError = new Promise((resolve) => stuck.once('error', resolve));
      const fast = tally(fill.reader());
      await failTheDisk(source, bytes, fast, fill);
      Readable.from(chunks(bytes.subarray(2 * MiB), 64 * 1024)).pipe(source);
      expect(await stuckError).toMatchObject({ reason: 'stall' });
      expect((await fast.ended).equals(bytes)).toBe(true);
      expect(opened.logs.find((l) => l.msg === 'dropped cache fill: readers too far behind were cut off')).toMatchObject({ readers: 1 });
    });
  });
});

function* chunks(bytes: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}
