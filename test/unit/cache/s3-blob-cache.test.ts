/**
 * The blob cache over an S3 bucket (s3rver, see s3rver-fixture.ts): what must hold for the cache as a
 * whole, beyond the BlobStore suite. Nothing partial or wrong ever becomes an object; a storage outage
 * costs the cache its fill, never the clients their bytes; a restart reconciles rows and objects.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlobCache, BlobStoreUnavailableError } from '../../../src/cache/blob-cache.js';
import { createBlobStore } from '../../../src/cache/blob-stores/create-blob-store.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { startupErrorLine } from '../../../src/cli/startup-error.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { blob, collect, handSource, meta, MiB, openCache, tally, tempDir } from './cache-fixture.js';
import { startS3rver, useS3rverCredentials } from './s3rver-fixture.js';

async function s3Cache(dir?: string) {
  useS3rverCredentials();
  const s3 = await startS3rver();
  const opened = await openCache({ blobStore: s3.config(), ...(dir ? { dir } : {}) });
  return { s3, ...opened };
}

const flipLastByte = (bytes: Buffer): Buffer => Buffer.concat([bytes.subarray(0, -1), Buffer.from([bytes.at(-1)! ^ 1])]);

describe('a blob cache in an S3 bucket', () => {
  it('commits a fill as one object under its digest, served whole and by range', async () => {
    const { s3, cache } = await s3Cache();
    const { bytes, digest } = blob(17 * MiB + 3);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.end(bytes);
    await fill.done;
    expect((await reader.ended).equals(bytes)).toBe(true);
    expect(await s3.objects()).toEqual([`cache/blobs/sha256/${digest.slice(7)}`]);
    expect(await s3.openUploads()).toEqual([]);
    expect((await collect(cache.read(digest)!.stream)).equals(bytes)).toBe(true);
    expect((await collect(cache.read(digest, { start: 9 * MiB, end: 9 * MiB + 99 })!.stream)).equals(bytes.subarray(9 * MiB, 9 * MiB + 100))).toBe(true);
  });

  it.each([
    ['in one PutObject', 100 * 1024],
    ['in a multipart upload', 20 * MiB],
  ])('leaves no object for a fill whose digest does not match (%s)', async (_how, size) => {
    const { s3, cache } = await s3Cache();
    const { bytes, digest } = blob(size);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    source.end(flipLastByte(bytes));
    await expect(fill.done).rejects.toMatchObject({ reason: 'digest-mismatch' });
    expect(cache.stat(digest)).toBeUndefined();
    expect(await s3.objects()).toEqual([]);
    expect(await s3.openUploads()).toEqual([]);
  });

  it('leaves no object for a put whose digest does not match', async () => {
    const { s3, cache } = await s3Cache();
    const { bytes, digest } = blob(1000);
    await expect(cache.put(digest, flipLastByte(bytes), meta({ kind: 'manifest' }))).rejects.toMatchObject({ reason: 'digest-mismatch' });
    expect(await s3.objects()).toEqual([]);
  });

  it('serves a miss to its readers while the storage is down, and drops only the fill', async () => {
    const { s3, cache, logs } = await s3Cache();
    await s3.stop();
    const { bytes, digest } = blob(12 * MiB + 5);
    const source = handSource();
    const fill = cache.fill(digest, source, meta({ size: bytes.length }));
    const reader = tally(fill.reader());
    source.end(bytes);
    expect((await reader.ended).equals(bytes)).toBe(true);
    await expect(fill.done).rejects.toMatchObject({ name: 'FillError' });
    expect(cache.stat(digest)).toBeUndefined();
    expect(cache.activeFill(digest)).toBeUndefined();
    expect(logs.find((l) => l.msg === 'cache fill dropped')).toMatchObject({ digest });
  });

  it('at open, drops rows whose object is gone and adopts objects without a row', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const first = await openCache({ blobStore: s3.config() });
    const kept = blob(3000);
    const lost = blob(4000);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
    const manifestDigest = (await import('../../../src/registry/digest.js')).digestOf(manifest, 'sha256');
    await first.cache.put(kept.digest, kept.bytes, meta());
    await first.cache.put(lost.digest, lost.bytes, meta());
    await first.cache.put(manifestDigest, manifest, meta({ kind: 'manifest', mediaType: 'application/vnd.oci.image.index.v1+json' }));
    await first.cache.close();
    const store = await createBlobStore(s3.config(), new CacheLayout(first.dir));
    await store.remove(lost.digest);
    await store.close();

    const again = await openCache({ dir: first.dir, blobStore: s3.config() });
    await again.cache.reconciled();
    expect(again.cache.stat(lost.digest)).toBeUndefined();
    expect((await collect(again.cache.read(kept.digest)!.stream)).equals(kept.bytes)).toBe(true);
    expect(again.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ store: 's3', rowsDropped: 1, reindexed: 0 });

    // Another replica's data directory (its own index) over the same bucket: the objects are adopted.
    const other = await openCache({ blobStore: s3.config() });
    await other.cache.reconciled();
    expect(other.cache.stat(kept.digest)).toMatchObject({ size: kept.bytes.length, kind: 'blob' });
    expect(other.cache.stat(manifestDigest)).toMatchObject({ kind: 'manifest', mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(other.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ reindexed: 2 });
  });

  it('refuses to open when its bucket cannot be used, with a line that names BLOB_STORE', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const { logger } = captureLogger();
    const opening = BlobCache.open({ dir: join(await tempDir(), 'cache'), maxSize: MiB, stallTimeoutMs: 5_000, logger, blobStore: { ...s3.config(), bucket: 'no-such-bucket' } });
    const error = await opening.then(
      () => expect.fail('opened'),
      (thrown: unknown) => thrown,
    );
    let cause: unknown = error;
    while (cause instanceof Error && !(cause instanceof BlobStoreUnavailableError)) cause = cause.cause;
    expect(cause).toBeInstanceOf(BlobStoreUnavailableError);
    expect(startupErrorLine(error)).toMatch(/BLOB_STORE: cannot use s3:\/\/no-such-bucket\/cache at http:\/\/127\.0\.0\.1:\d+: NotFound/);
  });
});
