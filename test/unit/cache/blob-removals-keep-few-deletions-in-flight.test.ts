import { access, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobRemovals } from '../../../src/cache/blob-removals.js';
import { FileBlobStore } from '../../../src/cache/blob-stores/file.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, tempDir } from './cache-fixture.js';

// An eviction pass of 10,000 blobs queued 10,000 unlinks on libuv's four threads at once, and every
// other file operation (a hit's read, the index's statement) waited behind them (issue 13). Deletions
// now go to the store a few at a time; each still ends before `settled()` and before a commit of the
// same digest goes on (`clear`). A bucket's deletions are not held back.

/** The real file store, counting the deletions it is running at each moment. */
class CountingStore extends FileBlobStore {
  running = 0;
  most = 0;

  override async remove(...args: Parameters<FileBlobStore['remove']>): Promise<void> {
    this.running += 1;
    this.most = Math.max(this.most, this.running);
    try {
      await super.remove(...args);
    } finally {
      this.running -= 1;
    }
  }
}

describe('blob removals', () => {
  it('hand the store a few deletions at a time, and every file is gone once settled', async () => {
    const layout = new CacheLayout(await tempDir());
    const store = new CountingStore(layout);
    const blobs = Array.from({ length: 200 }, () => blob(64));
    for (const { digest, bytes } of blobs) {
      await mkdir(dirname(layout.blobPath(digest)), { recursive: true });
      await writeFile(layout.blobPath(digest), bytes);
    }
    const removals = new BlobRemovals(store, captureLogger().logger);
    const all = blobs.map(({ digest }) => removals.unlink(digest));
    // A commit of one of them waits for its deletion, however far back in the queue it is.
    const last = blobs.at(-1)!.digest;
    expect(removals.removing(last)).toBe(true);
    await removals.clear(last);
    await expect(access(layout.blobPath(last))).rejects.toThrow();
    await removals.settled();
    await Promise.all(all);
    expect(store.most).toBeGreaterThan(0);
    expect(store.most).toBeLessThanOrEqual(3);
    for (const { digest } of blobs) await expect(access(layout.blobPath(digest))).rejects.toThrow();
    expect(blobs.some(({ digest }) => removals.removing(digest))).toBe(false);
  });

  it('hold back no deletion of a bucket: those wait on the network, not on the file threads', async () => {
    const layout = new CacheLayout(await tempDir());
    // The real file store under another kind's name: only the kind decides.
    const bucket: CountingStore = Object.assign(Object.create(new CountingStore(layout)) as CountingStore, { kind: 's3', running: 0, most: 0 });
    const removals = new BlobRemovals(bucket, captureLogger().logger);
    await Promise.all(Array.from({ length: 50 }, () => removals.unlink(blob(64).digest)));
    expect(bucket.most).toBe(50);
  });

  it('go on after a deletion fails', async () => {
    const layout = new CacheLayout(await tempDir());
    const store = new CountingStore(layout);
    const { logger, lines } = captureLogger();
    const removals = new BlobRemovals(store, logger);
    const blobs = Array.from({ length: 8 }, () => blob(64));
    for (const { digest, bytes } of blobs.slice(1)) {
      await mkdir(dirname(layout.blobPath(digest)), { recursive: true });
      await writeFile(layout.blobPath(digest), bytes);
    }
    // The first one's path is a directory with a file in it: its unlink fails (EISDIR or EPERM).
    await mkdir(layout.blobPath(blobs[0]!.digest), { recursive: true });
    await writeFile(`${layout.blobPath(blobs[0]!.digest)}/x`, 'x');
    await Promise.all(blobs.map(({ digest }) => removals.unlink(digest)));
    await removals.settled();
    expect(lines.filter((line) => line.msg === 'cache: removing a blob failed')).toHaveLength(1);
    for (const { digest } of blobs.slice(1)) await expect(access(layout.blobPath(digest))).rejects.toThrow();
    expect(store.running).toBe(0);
  });
});
