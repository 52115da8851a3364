/**
 * The S3 stand-in inside a bench sandbox: test/fixtures/s3-server.mjs (s3rver behind TLS from the
 * test CA; a fixture, as no S3 server is packaged in Debian) on `address:443`, its files in the
 * sandbox's temp dir. `stop()` kills it (the storage is down: connections refused), `start()` runs it
 * again on the same files, so objects written before the outage are there after it.
 *
 *   const s3 = await startSandboxS3(bench.sandbox, bench.ca, { address: '127.0.0.5' });
 *   // BLOB_STORE=s3.blobStore('fleet'), AWS_ACCESS_KEY_ID/SECRET=S3RVER, NODE_EXTRA_CA_CERTS=ca.certFile
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type FixtureProcess, startFixture } from './fixture-process.js';
import { type Sandbox, stopChild } from './sandbox.js';
import type { TestCa } from './test-ca.js';

const S3_FIXTURE = fileURLToPath(new URL('../fixtures/s3-server.mjs', import.meta.url));
/** s3rver keeps an object's bytes in `<dir>/<bucket>/<key>._S3rver_object`. */
const OBJECT_SUFFIX = '._S3rver_object';

export interface SandboxS3 {
  readonly address: string;
  readonly bucket: string;
  /** The BLOB_STORE value for objects under `prefix`. */
  blobStore(prefix: string): string;
  /** What a Layover process needs to use it: s3rver's key pair and trust in the test CA. */
  readonly env: Record<string, string>;
  /** The keys of every object in the bucket, from s3rver's own files (works while it is stopped). */
  objects(): string[];
  readonly running: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startSandboxS3(sandbox: Sandbox, ca: TestCa, options: { address: string; bucket?: string }): Promise<SandboxS3> {
  const { address } = options;
  const bucket = options.bucket ?? 'layover-blobs';
  const dir = join(sandbox.dir, `s3-${address}`);
  const tls = await ca.issue(`s3-${address}`, [address]);
  let fixture: FixtureProcess | undefined;
  const running = (): boolean => fixture !== undefined && fixture.child.exitCode === null && fixture.child.signalCode === null;

  const objects = (at = join(dir, bucket), prefix = ''): string[] =>
    readdirSync(at, { withFileTypes: true }).flatMap((entry) => {
      if (entry.isDirectory()) return entry.name.startsWith('._S3rver') ? [] : objects(join(at, entry.name), `${prefix}${entry.name}/`);
      return entry.name.endsWith(OBJECT_SUFFIX) ? [`${prefix}${entry.name.slice(0, -OBJECT_SUFFIX.length)}`] : [];
    });

  const s3: SandboxS3 = {
    address,
    bucket,
    blobStore: (prefix) => `s3://${bucket}/${prefix}?endpoint=https://${address}&region=us-east-1`,
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', NODE_EXTRA_CA_CERTS: ca.certFile },
    objects: () => objects(),
    get running() {
      return running();
    },
    async start() {
      if (running()) return;
      fixture = await startFixture(sandbox, S3_FIXTURE, ['--listen', `${address}:443`, '--cert', tls.certFile, '--key', tls.keyFile, '--dir', dir, '--bucket', bucket]);
    },
    // SIGKILL: the storage vanishes mid-request, as a crashed or unreachable service does.
    async stop() {
      if (fixture) await stopChild(fixture.child, 'SIGKILL');
    },
  };
  await s3.start();
  return s3;
}
