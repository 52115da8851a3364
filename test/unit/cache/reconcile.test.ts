import { spawnSync } from 'node:child_process';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirectoryLockedError } from '../../../src/cache/blob-cache.js';
import { digestHex, digestOf, type Digest } from '../../../src/registry/digest.js';
import { blob, collect, meta, openCache, tempDir } from './cache-fixture.js';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import { stillWithoutRow } from '../../../src/cache/reconcile.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { entry } from './cache-index-suite.js';

function blobFile(dir: string, digest: Digest): string {
  const hex = digestHex(digest);
  return join(dir, 'blobs', digest.slice(0, 6), hex.slice(0, 2), hex);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function plant(dir: string, digest: Digest, bytes: Buffer): Promise<void> {
  await mkdir(join(blobFile(dir, digest), '..'), { recursive: true });
  await writeFile(blobFile(dir, digest), bytes);
}

describe('open() after a crash', () => {
  it('removes temp files, drops rows without files, re-indexes good files and removes bad ones', async () => {
    const first = await openCache();
    const [kept, lost] = [blob(1000), blob(2000)];
    await first.cache.put(kept.digest, kept.bytes, meta({ source: 'ghcr.io/a/b' }));
    await first.cache.put(lost.digest, lost.bytes, meta());
    await first.cache.close();
    const { dir } = first;

    await writeFile(join(dir, 'tmp', 'deadbeef-123.part'), 'half a layer');
    await rm(blobFile(dir, lost.digest));
    const orphan = blob(5000, 'sha512');
    await plant(dir, orphan.digest, orphan.bytes);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    const manifestDigest = digestOf(manifest);
    await plant(dir, manifestDigest, manifest);
    const liar = blob(100);
    await plant(dir, liar.digest, Buffer.from('not what the name says'));
    await writeFile(join(blobFile(dir, kept.digest), '..', 'not-a-digest'), 'x');

    const second = await openCache({ dir });
    const { cache, logs } = second;
    await cache.reconciled();
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(cache.stat(kept.digest)).toMatchObject({ size: 1000, source: 'ghcr.io/a/b' });
    expect(cache.stat(lost.digest)).toBeUndefined();
    expect(cache.stat(orphan.digest)).toMatchObject({ size: 5000, kind: 'blob', source: 'reconciled' });
    expect(cache.stat(manifestDigest)).toMatchObject({ kind: 'manifest', mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(cache.stat(liar.digest)).toBeUndefined();
    expect(await exists(blobFile(dir, liar.digest))).toBe(false);
    expect(await exists(join(blobFile(dir, kept.digest), '..', 'not-a-digest'))).toBe(false);
    expect((await collect(cache.read(orphan.digest)!.stream)).equals(orphan.bytes)).toBe(true);
    expect(logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({
      tmpRemoved: 1,
      rowsDropped: 1,
      reindexed: 2,
      filesRemoved: 2,
    });

    // The repairs were written to the index: a third open finds nothing to fix.
    await cache.close();
    const third = await openCache({ dir });
    await third.cache.reconciled();
    expect(third.cache.stats().entries).toBe(3);
    expect(third.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ rowsDropped: 0, reindexed: 0, filesRemoved: 0 });
  });
});

describe('verify()', () => {
  it('removes blobs whose bytes changed on disk, and keeps the rest', async () => {
    const { cache, dir } = await openCache();
    const [good, bad, gone] = [blob(300), blob(300), blob(300)];
    for (const x of [good, bad, gone]) await cache.put(x.digest, x.bytes, meta());
    const flipped = Buffer.from(bad.bytes);
    flipped[123]! ^= 0xff;
    await writeFile(blobFile(dir, bad.digest), flipped);
    await rm(blobFile(dir, gone.digest));
    const result = await cache.verify();
    expect(result.checked).toBe(3);
    expect(result.removed.sort()).toEqual([bad.digest, gone.digest].sort());
    expect(cache.stat(bad.digest)).toBeUndefined();
    expect(cache.stat(good.digest)).toBeDefined();
    await cache.prune(); // waits for removals
    expect(await exists(blobFile(dir, bad.digest))).toBe(false);
  });

  it('a corrupt blob being read leaves the index at once and the disk when its reader closes', async () => {
    const { cache, dir } = await openCache();
    const bad = blob(300);
    await cache.put(bad.digest, bad.bytes, meta());
    await writeFile(blobFile(dir, bad.digest), Buffer.alloc(300));
    const reader = cache.read(bad.digest)!.stream;
    expect((await cache.verify()).removed).toEqual([bad.digest]);
    expect(cache.read(bad.digest)).toBeUndefined();
    expect(await exists(blobFile(dir, bad.digest))).toBe(true);
    await collect(reader);
    await cache.prune();
    expect(await exists(blobFile(dir, bad.digest))).toBe(false);
  });

  it('a file shorter than its row is removed, and the blobs after it are still checked', async () => {
    const { cache, dir } = await openCache();
    const [short, bad] = [blob(300), blob(300)];
    for (const x of [short, bad]) await cache.put(x.digest, x.bytes, meta());
    await writeFile(blobFile(dir, short.digest), short.bytes.subarray(0, 100));
    await writeFile(blobFile(dir, bad.digest), Buffer.alloc(300));
    const result = await cache.verify();
    expect(result.checked).toBe(2);
    expect(result.removed.sort()).toEqual([short.digest, bad.digest].sort());
    expect(cache.stat(short.digest)).toBeUndefined();
  });
});

describe('read()', () => {
  it('a file shorter than its row: the read fails, and the blob is dropped instead of failing every read after it', async () => {
    const { cache, dir, logs } = await openCache();
    const short = blob(300);
    await cache.put(short.digest, short.bytes, meta());
    await writeFile(blobFile(dir, short.digest), short.bytes.subarray(0, 100));
    await expect(collect(cache.read(short.digest)!.stream)).rejects.toThrow(/ends at byte 100/);
    expect(cache.stat(short.digest)).toBeUndefined();
    expect(logs.some((line) => line.digest === short.digest && line.reason === 'file short')).toBe(true);
    await cache.prune();
    expect(await exists(blobFile(dir, short.digest))).toBe(false);
  });
});

describe('the directory lock', () => {
  it('names the live process that holds it', async () => {
    const dir = join(await tempDir(), 'cache');
    await mkdir(dir, { recursive: true });
    // Our parent (the vitest main process) is alive and is not us.
    await writeFile(join(dir, 'layover.lock'), `${process.ppid}\n`);
    const failure = await openCache({ dir }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DirectoryLockedError);
    expect((failure as Error).message).toContain(`in use by another Layover (process ${process.ppid}`);
    expect(await readFile(join(dir, 'layover.lock'), 'utf8')).toBe(`${process.ppid}\n`);
  });

  it('takes over a lock left by a dead process and releases it on close', async () => {
    const dir = join(await tempDir(), 'cache');
    await mkdir(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(dir, 'layover.lock'), `${dead}\n`);
    const { cache } = await openCache({ dir });
    expect(await readFile(join(dir, 'layover.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await cache.close();
    expect(await exists(join(dir, 'layover.lock'))).toBe(false);
  });
});

describe('reconcile beside live replicas', () => {
  it('re-indexes only objects still without a row: a row another replica wrote since the load is kept as it is', async () => {
    const index = await openSqliteIndex(join(await tempDir(), 'index.sqlite'), captureLogger().logger);
    try {
      const [committed, orphan] = [entry(1), entry(3)];
      // Written by "another replica" after this one loaded the index and listed the store.
      await index.putEntry(committed);
      const guesses = [committed, orphan].map((e) => ({ ...e, source: 'reconciled' }));
      expect(await stillWithoutRow(index, guesses)).toEqual([guesses[1]]);
    } finally {
      await index.close();
    }
  });
});
