/**
 * Large blobs for the benchmarks: `size` bytes that no compression can shrink (AES-256-CTR of zeros,
 * keyed by a label, so a run is reproducible), written to a file in the sandbox and pushed to the
 * upstream registry with curl (POST an upload, then one monolithic PUT), the way a registry client
 * pushes a layer. The file is removed after the push: the registry's copy is the one served.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DIRECT_HOST, REGISTRY_ADDRESS, type Bench } from '../../test/bench/bench.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface PushedBlob {
  repository: string;
  digest: string;
  size: number;
  /** `/v2/<repository>/blobs/<digest>`. */
  path: string;
}

const CHUNK = 8 * MiB;

/** Writes `size` incompressible bytes derived from `label` to `path`; returns their sha256 digest. */
export async function writeBlobFile(path: string, label: string, size: number): Promise<string> {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(CHUNK);
  const file = await open(path, 'wx');
  try {
    for (let done = 0; done < size; ) {
      const length = Math.min(CHUNK, size - done);
      const bytes = cipher.update(length === CHUNK ? zeros : zeros.subarray(0, length));
      hash.update(bytes);
      await file.write(bytes);
      done += length;
    }
  } finally {
    await file.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Generates a blob of `size` bytes (distinct per `label`) and pushes it to `repository` on the bench's registry. */
export async function pushBlob(bench: Bench, repository: string, label: string, size: number): Promise<PushedBlob> {
  const file = join(bench.sandbox.dir, `blob-${createHash('sha256').update(label).digest('hex').slice(0, 12)}`);
  const digest = await writeBlobFile(file, label, size);
  const origin = `https://${DIRECT_HOST}`;
  const curl = ['-sS', '--http1.1', '--cacert', bench.ca.certFile, '--resolve', `${DIRECT_HOST}:443:${REGISTRY_ADDRESS}`];
  try {
    const start = await bench.sandbox.exec('curl', [...curl, '-X', 'POST', '-o', '/dev/null', '-D', '-', `${origin}/v2/${repository}/blobs/uploads/`]);
    const location = /^location: *(\S+)/im.exec(start.stdout)?.[1];
    if (start.code !== 0 || !location) throw new Error(`pushBlob: starting the upload failed (${start.code}): ${start.stderr}${start.stdout}`);
    const url = new URL(location, origin);
    url.searchParams.set('digest', digest);
    const put = await bench.sandbox.exec(
      'curl',
      [...curl, '-X', 'PUT', '-T', file, '-H', 'content-type: application/octet-stream', '-o', '/dev/null', '-w', '%{http_code}', url.href],
      { timeoutMs: 300_000 },
    );
    if (put.code !== 0 || put.stdout !== '201') throw new Error(`pushBlob: PUT answered ${put.stdout} (${put.code}): ${put.stderr}`);
  } finally {
    await rm(file, { force: true });
  }
  return { repository, digest, size, path: `/v2/${repository}/blobs/${digest}` };
}
