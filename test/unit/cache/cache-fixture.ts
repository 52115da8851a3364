import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { BlobCache, type BlobCacheOptions, type BlobMeta } from '../../../src/cache/blob-cache.js';
import { FileBlobStore } from '../../../src/cache/blob-stores/file.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { LruIndex } from '../../../src/cache/lru-index.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';
import { captureLogger, type LogLine } from '../../helpers/capture-logger.js';

export const MiB = 1024 * 1024;

/** A temp directory removed when the test ends. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layover-cache-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface OpenedCache {
  cache: BlobCache;
  dir: string;
  logs: LogLine[];
}

/** Opens a cache (in a fresh directory unless one is given) that is closed when the test ends. */
export async function openCache(options: Partial<BlobCacheOptions> = {}): Promise<OpenedCache> {
  const dir = options.dir ?? join(await tempDir(), 'cache');
  const { logger, lines } = captureLogger('debug');
  const cache = await BlobCache.open({ dir, maxSize: 1024 * MiB, stallTimeoutMs: 5_000, logger, ...options });
  onTestFinished(() => cache.close());
  return { cache, dir, logs: lines };
}

export function blob(size: number, algorithm: 'sha256' | 'sha512' = 'sha256'): { bytes: Buffer; digest: Digest } {
  const bytes = randomBytes(size);
  return { bytes, digest: digestOf(bytes, algorithm) };
}

export function meta(overrides: Partial<BlobMeta> = {}): BlobMeta {
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', kind: 'blob', source: 'quay.io/org/repo', ...overrides };
}

/** All of a stream's bytes; rejects with the stream's error. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A source the test feeds by hand (write, end, destroy), like an upstream body arriving in pieces. */
export function handSource(): PassThrough {
  return new PassThrough({ highWaterMark: MiB });
}

/** A reader's bytes so far, counted as they arrive (the stream keeps flowing). */
export function tally(stream: Readable): { bytes: () => Buffer; ended: Promise<Buffer> } {
  const chunks: Buffer[] = [];
  const ended = new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
  ended.catch(() => undefined);
  return { bytes: () => Buffer.concat(chunks), ended };
}

/** Waits until `condition` holds, checking on a short timer; fails after `ms`. */
export async function until(condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Blobs of these sizes stored as files and indexed (no BlobCache around them), the first the least recently used. */
export async function storedBlobs(sizes: number[]): Promise<{ store: FileBlobStore; lru: LruIndex; digests: Digest[] }> {
  const layout = new CacheLayout(await tempDir());
  await mkdir(layout.tmpDir, { recursive: true });
  const store = new FileBlobStore(layout);
  const lru = new LruIndex();
  const digests: Digest[] = [];
  for (const [i, size] of sizes.entries()) {
    const { bytes, digest } = blob(size);
    const spool = layout.tmpPath(digest);
    await writeFile(spool, bytes);
    await store.beginUpload(digest, spool).commit(size);
    lru.insert({ digest, size, mediaType: null, kind: 'blob', created: i, lastAccess: i, source: 'registry.test/app' });
    digests.push(digest);
  }
  return { store, lru, digests };
}
