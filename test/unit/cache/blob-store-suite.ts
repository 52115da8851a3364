/**
 * The one test suite of the BlobStore interface (src/cache/blob-store.ts), run against every
 * implementation (file-blob-store.test.ts, s3-blob-store.test.ts): what the cache core relies on
 * whichever store holds its blobs. The stores are real: files in a temp directory, s3rver for S3.
 */
import { writeFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../../src/cache/blob-store.js';
import { createBlobStore } from '../../../src/cache/blob-stores/create-blob-store.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import type { BlobStoreConfig } from '../../../src/config/shared-stores.js';
import type { Digest } from '../../../src/registry/digest.js';
import { blob, collect, meta, MiB, tempDir } from './cache-fixture.js';

export interface StoreUnderTest {
  config: BlobStoreConfig;
  /** Nothing of an upload that was not committed may be left in the store (e.g. an open multipart upload). */
  expectNoLeftovers(): Promise<void>;
}

interface Opened {
  store: BlobStore;
  layout: CacheLayout;
}

async function openStore(setup: () => Promise<StoreUnderTest>): Promise<Opened & StoreUnderTest> {
  const under = await setup();
  const layout = new CacheLayout(await tempDir());
  await mkdir(layout.tmpDir, { recursive: true });
  await mkdir(layout.blobsDir, { recursive: true });
  const store = await createBlobStore(under.config, layout);
  await store.check();
  return { ...under, store, layout };
}

/** What a fill does: the bytes spooled to a temp file and handed to the upload as they arrive, in socket-sized pieces. */
async function upload({ store, layout }: Opened, digest: Digest, bytes: Buffer, commit = true): Promise<void> {
  const spool = layout.tmpPath(digest);
  await writeFile(spool, bytes);
  const upload = store.beginUpload(digest, spool, meta());
  for (let at = 0; at < bytes.length; at += 64 * 1024) await upload.append(bytes.subarray(at, at + 64 * 1024));
  if (commit) await upload.commit(bytes.length);
  else await upload.abort();
}

const readAll = (store: BlobStore, digest: Digest, size: number) => collect(store.read(digest, { start: 0, end: size - 1 }));
const listed = async (store: BlobStore): Promise<Digest[]> => {
  const digests: Digest[] = [];
  for await (const digest of store.list()) digests.push(digest);
  return digests.sort();
};

export function blobStoreSuite(name: string, setup: () => Promise<StoreUnderTest>): void {
  describe(`BlobStore: ${name}`, () => {
    it('commits a blob and reads it whole and by ranges', async () => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(3 * MiB + 17);
      expect(await opened.store.stat(digest)).toBeNull();
      await upload(opened, digest, bytes);
      expect(await opened.store.stat(digest)).toMatchObject({ digest, size: bytes.length });
      expect((await readAll(opened.store, digest, bytes.length)).equals(bytes)).toBe(true);
      for (const [start, end] of [[0, 0], [5, 1000], [MiB - 1, 2 * MiB + 3], [bytes.length - 1, bytes.length - 1]] as const) {
        const part = await collect(opened.store.read(digest, { start, end }));
        expect(part.equals(bytes.subarray(start, end + 1))).toBe(true);
      }
    });

    it('streams a large blob (more than two upload parts) in chunks of at least 1 MiB', async () => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(20 * MiB + 3);
      await upload(opened, digest, bytes);
      const stream = opened.store.read(digest, { start: 0, end: bytes.length - 1 });
      const sizes: number[] = [];
      const chunks: Buffer[] = [];
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        sizes.push(chunk.length);
        chunks.push(chunk);
      }
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      expect(sizes.slice(0, -1).every((size) => size >= MiB)).toBe(true);
      await opened.expectNoLeftovers();
    });

    it.each([
      ['small', 1024],
      ['multipart', 18 * MiB],
    ])('an aborted upload (%s) leaves nothing readable', async (_kind, size) => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(size);
      await upload(opened, digest, bytes, false);
      expect(await opened.store.stat(digest)).toBeNull();
      expect(await listed(opened.store)).toEqual([]);
      await expect(readAll(opened.store, digest, bytes.length)).rejects.toMatchObject({ code: 'ENOENT' });
      await opened.expectNoLeftovers();
    });

    it('a commit of the wrong number of bytes fails and leaves nothing readable', async () => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(10 * MiB);
      const spool = opened.layout.tmpPath(digest);
      await writeFile(spool, bytes);
      const started = opened.store.beginUpload(digest, spool, meta());
      await started.append(bytes);
      // The file store has only the spool to go by; a store that counts what it was given refuses.
      if (opened.store.kind !== 'file') {
        await expect(started.commit(bytes.length + 1)).rejects.toThrow();
        await started.abort();
        expect(await opened.store.stat(digest)).toBeNull();
        await opened.expectNoLeftovers();
      } else {
        await started.abort();
      }
    });

    it('removes a blob, and removing a missing one is no error', async () => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(2048);
      await upload(opened, digest, bytes);
      await opened.store.remove(digest);
      expect(await opened.store.stat(digest)).toBeNull();
      await expect(readAll(opened.store, digest, bytes.length)).rejects.toMatchObject({ code: 'ENOENT' });
      await opened.store.remove(digest);
    });

    it('lists every committed blob', async () => {
      const opened = await openStore(setup);
      const blobs = [blob(10), blob(100, 'sha512'), blob(1000)];
      for (const { bytes, digest } of blobs) await upload(opened, digest, bytes);
      expect(await listed(opened.store)).toEqual(blobs.map((b) => b.digest).sort());
      await opened.store.remove(blobs[0]!.digest);
      expect(await listed(opened.store)).toEqual(blobs.slice(1).map((b) => b.digest).sort());
    });

    it('adopts a committed blob that lost its index row, with its kind', async () => {
      const opened = await openStore(setup);
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
      const { digest } = blob(0);
      const manifestDigest = (await import('../../../src/registry/digest.js')).digestOf(manifest, 'sha256');
      const spool = opened.layout.tmpPath(manifestDigest);
      await writeFile(spool, manifest);
      const started = opened.store.beginUpload(manifestDigest, spool, meta({ kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json' }));
      await started.append(manifest);
      await started.commit(manifest.length);
      expect(await opened.store.adopt(manifestDigest)).toMatchObject({ digest: manifestDigest, size: manifest.length, kind: 'manifest', mediaType: 'application/vnd.oci.image.manifest.v1+json' });
      expect(await opened.store.adopt(digest)).toBeNull();
    });

    it('concurrent uploads of one digest: the blob is readable and right whichever commits or aborts', async () => {
      const opened = await openStore(setup);
      const { bytes, digest } = blob(12 * MiB + 1);
      await Promise.all([upload(opened, digest, bytes), upload(opened, digest, bytes), upload(opened, digest, bytes, false)]);
      expect((await readAll(opened.store, digest, bytes.length)).equals(bytes)).toBe(true);
      expect(await listed(opened.store)).toEqual([digest]);
      await opened.expectNoLeftovers();
    });
  });
}
