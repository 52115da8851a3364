/**
 * A fixture, not a real storage service: s3rver (npm, a fake S3), started in this process on 127.0.0.1
 * and a free port, with its files in a temp directory; no S3 server is packaged in Debian. Path-style
 * only. It cannot list multipart uploads, so tests look for leftover uploads in its own directory
 * (`<dir>/<bucket>/._S3rver_uploads`), and it lacks AbortMultipartUpload (DELETE ?uploadId=), which
 * this wrapper answers as S3 does: the upload's parts are removed, 204.
 * s3rver takes any access key pair it knows (S3RVER/S3RVER): the test's AWS_* are set to that.
 */
import { readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import S3rver from 's3rver';
import { onTestFinished, vi } from 'vitest';
import type { BlobStoreConfig } from '../../../src/config/shared-stores.js';
import { tempDir } from './cache-fixture.js';

/** s3rver keeps an object's bytes in `<bucket>/<key>._S3rver_object`. */
const OBJECT_SUFFIX = '._S3rver_object';

export interface S3Fixture {
  endpoint: string;
  bucket: string;
  /** BLOB_STORE's parsed form for this bucket under `prefix`. */
  config(prefix?: string): Extract<BlobStoreConfig, { kind: 's3' }>;
  /** The keys of every object in the bucket. */
  objects(): Promise<string[]>;
  /** Multipart uploads neither completed nor aborted. */
  openUploads(): Promise<string[]>;
  /** Closes the listener and every connection: the storage is down from now on. */
  stop(): Promise<void>;
}

/** Credentials s3rver accepts, for SDK clients in this process (the default provider chain reads them). */
export function useS3rverCredentials(): void {
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'S3RVER');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'S3RVER');
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.stubEnv('AWS_CA_BUNDLE', undefined);
  onTestFinished(() => void vi.unstubAllEnvs());
}

/** An s3rver with one bucket, closed when the test ends. */
export async function startS3rver(bucket = 'layover'): Promise<S3Fixture> {
  const directory = await tempDir();
  const s3rver = new S3rver({ silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  await s3rver.configureBuckets();
  const handle = s3rver.callback();
  const bucketDir = join(directory, bucket);
  const uploadsDir = join(bucketDir, '._S3rver_uploads');
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://s3');
    const uploadId = url.searchParams.get('uploadId');
    if (request.method !== 'DELETE' || uploadId === null) return void handle(request, response);
    if (!/^[0-9a-f]+$/.test(uploadId)) return void response.writeHead(404).end();
    rm(join(uploadsDir, uploadId), { recursive: true, force: true })
      .then(() => response.writeHead(204).end())
      .catch(() => response.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = async (): Promise<void> => {
    if (!server.listening) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  onTestFinished(stop);
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    bucket,
    config: (prefix = 'cache') => ({ kind: 's3', bucket, prefix, endpoint, region: 'us-east-1', pathStyle: true }),
    objects: async () => (await listFiles(bucketDir)).filter((file) => file.endsWith(OBJECT_SUFFIX)).map((file) => file.slice(0, -OBJECT_SUFFIX.length)),
    openUploads: async () => readdir(uploadsDir).catch(() => []),
    stop,
  };
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const nested = await Promise.all(entries.map((entry) => (entry.isDirectory() ? listFiles(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`])));
  return nested.flat();
}
