/**
 * A cache directory with many committed blobs, as a long-running Layover leaves it: small files with
 * correct digests in the cache layout, their index rows and records written through the project's own
 * SQLite index (so the format is real), a few image manifests with tags, and optionally a pin. For
 * bench/index-scale.bench-run.ts (100,000 blobs) and the tests of the open path (10,000).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { CacheLayout } from '../../../src/cache/cache-layout.js';
import { scopeFromText, scopeName } from '../../../src/cache/cache-scope.js';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import type { Digest } from '../../../src/registry/digest.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface ManyBlobsOptions {
  /** How many layer blobs. */
  count: number;
  /** `registry/repository` every blob was pulled from (its source, access and tag records). */
  repository: string;
  /** Images: manifests each naming `layersPerImage` of the blobs, tagged `v0`, `v1`, … */
  images?: number;
  layersPerImage?: number;
  /** A tag to pin (`v0`), or none. */
  pinTag?: string;
  logger: FastifyBaseLogger;
}

export interface ManyBlobs {
  /** The layer blobs, in the order their last access was written (not the order of `lastAccess`). */
  blobs: BlobEntry[];
  manifests: Array<{ tag: string; entry: BlobEntry; layers: Digest[] }>;
  /** Every entry, least recently used first (what the LRU must load). */
  oldestFirst: BlobEntry[];
}

const hexOf = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Writes the cache under `dir` (the `<data-dir>/cache` directory); `dir` must not hold a cache yet. */
export async function writeManyBlobs(dir: string, options: ManyBlobsOptions): Promise<ManyBlobs> {
  const layout = new CacheLayout(dir);
  const [registry] = options.repository.split('/');
  const now = Date.now();
  const blobs: BlobEntry[] = [];
  const madeDirs = new Set<string>();
  const put = async (bytes: Buffer): Promise<Digest> => {
    const digest = `sha256:${hexOf(bytes)}` as Digest;
    const path = layout.blobPath(digest);
    if (!madeDirs.has(dirname(path))) {
      await mkdir(dirname(path), { recursive: true });
      madeDirs.add(dirname(path));
    }
    await writeFile(path, bytes);
    return digest;
  };
  for (let i = 0; i < options.count; i += 1) {
    const bytes = Buffer.from(`layer ${i} of ${options.repository}\n`);
    const digest = await put(bytes);
    // Last uses spread over a day in an order unrelated to i or to the digests: the load must sort.
    const lastAccess = now - 86_400_000 + ((i * 7919) % options.count) * 100;
    blobs.push({ digest, size: bytes.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', kind: 'blob', created: lastAccess, lastAccess, source: options.repository });
  }
  const manifests: ManyBlobs['manifests'] = [];
  const perImage = options.layersPerImage ?? 5;
  for (let image = 0; image < (options.images ?? 0); image += 1) {
    const layers = blobs.slice(image * perImage, (image + 1) * perImage);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', image }));
    const configDigest = await put(config);
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
        layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size })),
      }),
    );
    const digest = await put(body);
    // Before every layer's last use, and all different: the expected order has no ties to break.
    const at = now - 90_000_000 + 2 * image;
    blobs.push({ digest: configDigest, size: config.length, mediaType: 'application/vnd.oci.image.config.v1+json', kind: 'blob', created: at + 1, lastAccess: at + 1, source: options.repository });
    const entry: BlobEntry = { digest, size: body.length, mediaType: OCI_MANIFEST, kind: 'manifest', created: at, lastAccess: at, source: options.repository };
    manifests.push({ tag: `v${image}`, entry, layers: [configDigest, ...layers.map((layer) => layer.digest)] });
  }

  const records: Array<readonly [string, unknown]> = [
    // The repository is known to be public: hits need no upstream probe for an hour (ANONYMOUS_ACCESS_TTL).
    [`access:anonymous:${options.repository}`, { readable: true, at: now }],
    [`access:reached:${registry}`, now],
    ...blobs.map((entry) => [`access:member:${entry.digest}`, [options.repository]] as const),
    ...manifests.map(({ entry }) => [`access:member:${entry.digest}`, [options.repository]] as const),
    ...manifests.map(({ tag, entry }) => [`tag:${options.repository}:${tag}|${OCI_MANIFEST}`, { digest: entry.digest, fetchedAt: now }] as const),
  ];
  if (options.pinTag) {
    const scope = scopeFromText(`${options.repository}:${options.pinTag}`);
    records.push([`pin:${scope.kind}:${scopeName(scope)}`, { scope, at: now }]);
  }
  const entries = [...blobs, ...manifests.map(({ entry }) => entry)];
  const index = await openSqliteIndex(layout.indexFile, options.logger);
  try {
    const unwritten = await index.putEntries(entries);
    if (unwritten.length > 0) throw new Error(`writeManyBlobs: ${unwritten.length} rows not written`);
    await index.putRecords(records);
  } finally {
    await index.close();
  }
  const oldestFirst = [...entries].sort((a, b) => a.lastAccess - b.lastAccess);
  return { blobs, manifests, oldestFirst };
}
