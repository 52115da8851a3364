import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, hasherFor, type Digest } from '../../registry/digest.js';
import type { AdoptedBlob, BlobStore, BlobUpload, StoredBlob, UnfinishedUpload } from '../blob-store.js';
import type { ByteRange } from '../blob-types.js';
import { ALGORITHMS, type CacheLayout } from '../cache-layout.js';
import { hashFile, installFile, isCode } from '../durable-files.js';
import { FileReadStream } from './file-read-stream.js';
import { manifestMediaType } from './manifest-sniff.js';

/** Files up to this size are read whole (and may be recognised as manifests); larger ones are streamed. */
const SMALL_FILE = 4 * 1024 * 1024;

/**
 * Committed blobs as files under `<cache>/blobs/<algorithm>/<fan>/<hex>` (see CacheLayout): the fill's
 * fsynced spool file is renamed into place, so a commit costs no copy and a crash mid-write loses
 * nothing that was complete. The default store.
 */
export class FileBlobStore implements BlobStore {
  readonly kind = 'file';
  private readonly layout: CacheLayout;

  constructor(layout: CacheLayout) {
    this.layout = layout;
  }

  async check(): Promise<void> {
    // The data directory was created and locked by the cache; nothing else can be missing.
  }

  read(digest: Digest, range: ByteRange): FileReadStream {
    return new FileReadStream(this.layout.blobPath(digest), range.start, range.end);
  }

  beginUpload(digest: Digest, spoolPath: string): BlobUpload {
    const finalPath = this.layout.blobPath(digest);
    return {
      // The fill writes the spool file itself: it is the upload.
      append: () => undefined,
      commit: () => installFile(spoolPath, finalPath),
      // The fill removes its own spool file.
      abort: async () => undefined,
    };
  }

  async remove(digest: Digest): Promise<void> {
    try {
      await unlink(this.layout.blobPath(digest));
    } catch (error) {
      if (!isCode(error, 'ENOENT')) throw error;
    }
  }

  async stat(digest: Digest): Promise<StoredBlob | null> {
    try {
      const info = await stat(this.layout.blobPath(digest));
      return { digest, size: info.size, modified: Math.round(info.mtimeMs) };
    } catch (error) {
      if (isCode(error, 'ENOENT')) return null;
      throw error;
    }
  }

  /** One readdir per fan-out directory (512 at most), not a stat per blob. */
  async *list(): AsyncIterable<Digest> {
    const { files } = await this.scan();
    yield* files;
  }

  async sweepStrays(): Promise<number> {
    const { strays } = await this.scan();
    await Promise.all(strays.map((path) => rm(path, { force: true })));
    return strays.length;
  }

  /** A fill's bytes live only in its spool file until the rename: reconcile empties the spool directory. */
  async *unfinishedUploads(): AsyncIterable<UnfinishedUpload> {}

  async abortUpload(): Promise<void> {}

  /** A file without a row (a lost or rebuilt index): re-hashed; removed when its bytes do not match its name. */
  async adopt(digest: Digest): Promise<AdoptedBlob | null> {
    const path = this.layout.blobPath(digest);
    const blob = await this.stat(digest);
    if (!blob) return null;
    if (blob.size <= SMALL_FILE) {
      const bytes = await readFile(path);
      if (hasherFor(digest).update(bytes).digest('hex') === digestHex(digest)) {
        const mediaType = manifestMediaType(bytes);
        return { ...blob, kind: mediaType ? 'manifest' : 'blob', mediaType };
      }
    } else {
      const hashed = await hashFile(path, digest);
      if (hashed && hashed.hex === digestHex(digest)) return { ...blob, kind: 'blob', mediaType: null };
    }
    await rm(path, { force: true });
    return null;
  }

  async presignedUrl(): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {}

  /**
   * The committed blobs' digests and the paths of files that are none. Only the digests are kept: a
   * path per file was 13 MB at 100,000 blobs, held through the reconcile that runs after a start.
   */
  private async scan(): Promise<{ files: Digest[]; strays: string[] }> {
    const files: Digest[] = [];
    const strays: string[] = [];
    for (const algorithm of ALGORITHMS) {
      const algorithmDir = this.layout.algorithmDir(algorithm);
      const fans = await readdirIfPresent(algorithmDir);
      await Promise.all(
        fans.map(async (fan) => {
          const fanDir = join(algorithmDir, fan);
          for (const name of await readdirIfPresent(fanDir)) {
            const digest = this.layout.digestOfFile(algorithm, fan, name);
            if (digest) files.push(digest);
            else strays.push(join(fanDir, name));
          }
        }),
      );
    }
    return { files, strays };
  }
}

async function readdirIfPresent(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    // ENOTDIR: a stray file where a directory belongs; it is not ours to serve either way.
    if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return [];
    throw error;
  }
}
