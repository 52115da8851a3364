import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { digestAlgorithm, digestHex, parseDigest, type Digest, type DigestAlgorithm } from '../registry/digest.js';

export const ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

/**
 * Where everything lives under the cache directory:
 *   blobs/<algorithm>/<first two hex>/<hex>   committed, verified blobs (the name is the digest)
 *   tmp/                                      fills in progress; anything here after a crash is partial
 *   index.sqlite                              keyv rows: blob metadata and caller records
 *   layover.lock                              the pid of the process that owns the directory
 * The two-hex fan-out keeps directories small at 100,000+ blobs.
 */
export class CacheLayout {
  readonly dir: string;
  readonly blobsDir: string;
  readonly tmpDir: string;
  readonly indexFile: string;
  readonly lockFile: string;

  // No parameter properties anywhere in src/cache: the crash test runs this code with Node's type stripping.
  constructor(dir: string) {
    this.dir = dir;
    this.blobsDir = join(dir, 'blobs');
    this.tmpDir = join(dir, 'tmp');
    this.indexFile = join(dir, 'index.sqlite');
    this.lockFile = join(dir, 'layover.lock');
  }

  algorithmDir(algorithm: DigestAlgorithm): string {
    return join(this.blobsDir, algorithm);
  }

  blobDir(digest: Digest): string {
    return join(this.algorithmDir(digestAlgorithm(digest)), digestHex(digest).slice(0, 2));
  }

  blobPath(digest: Digest): string {
    return join(this.blobDir(digest), digestHex(digest));
  }

  /** A fresh temp name: two fills (or a fill and a put) of one digest never share a file. */
  tmpPath(digest: Digest): string {
    return join(this.tmpDir, `${digestHex(digest).slice(0, 16)}-${randomBytes(6).toString('hex')}.part`);
  }

  /** The digest a file in `blobs/<algorithm>/<fan>/` stands for, or null when its name does not fit there. */
  digestOfFile(algorithm: DigestAlgorithm, fan: string, name: string): Digest | null {
    if (!name.startsWith(fan)) return null;
    return parseDigest(`${algorithm}:${name}`);
  }
}
