/**
 * An S3 upload copies what it is given into its part buffer instead of holding the fill's chunks until
 * the part is out: an upstream's 16 KiB chunks held that long are promoted to the old generation, and
 * only full collections free those. s3rver (see s3rver-fixture.ts) is the bucket.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../../src/cache/blob-stores/s3.js';
import { blob, collect, meta, tempDir } from './cache-fixture.js';
import { startS3rver, useS3rverCredentials } from './s3rver-fixture.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('an S3 upload', () => {
  it('keeps no reference to a chunk once append returns, and commits the same bytes', async () => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const store = new S3BlobStore(s3.config());
    const { bytes, digest } = blob(300 * 1024);
    const spoolPath = join(await tempDir(), 'spool');
    await writeFile(spoolPath, bytes);
    const upload = store.beginUpload(digest, spoolPath, meta({ size: bytes.length }));
    let chunk: Buffer | undefined = Buffer.from(bytes.subarray(0, 200 * 1024));
    // Its memory, not the Buffer object: a subarray kept elsewhere keeps that alive too.
    const held = new WeakRef(chunk.buffer);
    await upload.append(chunk);
    await upload.append(Buffer.from(bytes.subarray(200 * 1024)));
    chunk = undefined;
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(held.deref()).toBeUndefined();
    await upload.commit(bytes.length);
    expect((await collect(store.read(digest, { start: 0, end: bytes.length - 1 }))).equals(bytes)).toBe(true);
  });
});
