import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { digestHex, hasherFor, type Digest } from '../registry/digest.js';
import type { BlobEntry } from './blob-types.js';
import { ALGORITHMS, type CacheLayout } from './cache-layout.js';
import { hashFile, isCode } from './durable-files.js';
import type { IndexContents, IndexStore } from './index-store.js';

/** Files up to this size are read whole (and may be recognised as manifests); larger ones are streamed. */
const SMALL_FILE = 4 * 1024 * 1024;
const HASH_CONCURRENCY = 4;

/**
 * Makes the index and the files agree again after a crash (or any unclean stop), before anything is served:
 * - temp files are partial fills: removed;
 * - index rows whose file is gone (a crash between indexing and the rename): dropped;
 * - files with no row (a lost or rebuilt index): re-hashed, re-indexed when they match their name,
 *   removed otherwise. Nothing complete is lost and nothing partial is served.
 * Finding the files costs one readdir per fan-out directory (512 at most), not a stat per row.
 * Returns the entries that are good to serve.
 */
export async function reconcile(
  layout: CacheLayout,
  loaded: IndexContents,
  index: IndexStore,
  logger: FastifyBaseLogger,
): Promise<BlobEntry[]> {
  const started = performance.now();
  const tmpRemoved = await emptyDirectory(layout.tmpDir);
  const { files, strays } = await scanBlobFiles(layout);
  await Promise.all(strays.map((path) => rm(path, { force: true })));

  const live: BlobEntry[] = [];
  const missing: Digest[] = [];
  const indexed = new Set<Digest>();
  for (const entry of loaded.entries) {
    indexed.add(entry.digest);
    if (files.has(entry.digest)) live.push(entry);
    else missing.push(entry.digest);
  }

  const unindexed = [...files].filter(([digest]) => !indexed.has(digest));
  const reindexed: BlobEntry[] = [];
  let corrupt = 0;
  for (let i = 0; i < unindexed.length; i += HASH_CONCURRENCY) {
    await Promise.all(
      unindexed.slice(i, i + HASH_CONCURRENCY).map(async ([digest, path]) => {
        const entry = await entryFromFile(digest, path);
        if (entry) reindexed.push(entry);
        else {
          corrupt += 1;
          await rm(path, { force: true });
        }
      }),
    );
  }

  await index.deleteKeys(loaded.invalid);
  await index.deleteEntries(missing);
  const unwritten = await index.putEntries(reindexed);
  if (unwritten.length > 0) {
    // The files are verified and stay served; the next open re-indexes them again.
    logger.error({ count: unwritten.length }, 'cache reconcile: re-indexed rows were not written');
  }
  logger.info(
    {
      entries: live.length + reindexed.length,
      tmpRemoved,
      rowsDropped: missing.length + loaded.invalid.length,
      reindexed: reindexed.length,
      filesRemoved: corrupt + strays.length,
      ms: Math.round(performance.now() - started),
    },
    'cache index reconciled',
  );
  return live.concat(reindexed);
}

async function emptyDirectory(dir: string): Promise<number> {
  const names = await readdir(dir);
  await Promise.all(names.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  return names.length;
}

async function scanBlobFiles(layout: CacheLayout): Promise<{ files: Map<Digest, string>; strays: string[] }> {
  const files = new Map<Digest, string>();
  const strays: string[] = [];
  for (const algorithm of ALGORITHMS) {
    const algorithmDir = layout.algorithmDir(algorithm);
    const fans = await readdirIfPresent(algorithmDir);
    await Promise.all(
      fans.map(async (fan) => {
        const fanDir = join(algorithmDir, fan);
        for (const name of await readdirIfPresent(fanDir)) {
          const digest = layout.digestOfFile(algorithm, fan, name);
          if (digest) files.set(digest, join(fanDir, name));
          else strays.push(join(fanDir, name));
        }
      }),
    );
  }
  return { files, strays };
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

/** An entry for a file found without a row, or null when its bytes do not match its name. */
async function entryFromFile(digest: Digest, path: string): Promise<BlobEntry | null> {
  const info = await stat(path);
  const when = Math.round(info.mtimeMs);
  const base = { digest, size: info.size, created: when, lastAccess: when, source: 'reconciled' };
  if (info.size <= SMALL_FILE) {
    const bytes = await readFile(path);
    if (hasherFor(digest).update(bytes).digest('hex') !== digestHex(digest)) return null;
    const mediaType = manifestMediaType(bytes);
    return { ...base, kind: mediaType ? 'manifest' : 'blob', mediaType };
  }
  const hashed = await hashFile(path, digest);
  if (!hashed || hashed.hex !== digestHex(digest)) return null;
  return { ...base, kind: 'blob', mediaType: null };
}

/**
 * The media type of a manifest or index, so a re-indexed manifest is served with the right Content-Type.
 * Only documents that name their own media type and schema version qualify; configs and layers do not.
 */
function manifestMediaType(bytes: Buffer): string | null {
  if (bytes[0] !== 0x7b) return null; // '{'
  try {
    const document: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof document !== 'object' || document === null) return null;
    const { mediaType, schemaVersion } = document as { mediaType?: unknown; schemaVersion?: unknown };
    return typeof mediaType === 'string' && typeof schemaVersion === 'number' ? mediaType : null;
  } catch {
    return null;
  }
}
