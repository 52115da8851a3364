/**
 * `layover cache stats|ls|prune|verify` on a shared cache (a real redis-server or Postgres as the index,
 * s3rver as the bucket) while a replica runs, even from that replica's own data directory (locked by it):
 * the commands spool in a directory of their own, `prune` evicts for the fleet under the `evict` lease
 * (it waits while someone else holds it), and what `prune` and `verify` remove, the running replica forgets.
 * The compiled CLI runs as a child process; it is not run with spawnSync, which would stop this process's
 * s3rver from answering it.
 */
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { EVICTION_LEASE } from '../../../src/cache/blob-eviction.js';
import { digestHex } from '../../../src/registry/digest.js';
import { CLI } from '../../helpers/run-cli.js';
import { blob, meta, openCache, until } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials, type S3Fixture } from '../../unit/cache/s3rver-fixture.js';
import { indexConfigOf, openTestIndex, sharedIndexServers, type SharedIndexServer } from './shared-index-servers.js';

const servers = sharedIndexServers();
const SAFE = ['--upstream-dns', '127.0.0.1:9', '--advertise', '127.0.0.1'];
/** A hang guard for messages between processes on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the compiled `layover` with only the environment given, without blocking this process;
 * `stderr()` is what it has written there so far.
 */
function layover(args: string[], env: Record<string, string>): { done: Promise<Ran>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  onTestFinished(() => void child.kill());
  const done = new Promise<Ran>((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
  return { done, stderr: () => stderr };
}

describe.each(servers)('layover cache on a shared %s index and bucket', (name, server) => {
  const fleetOfOne = async (test: string) => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const prefix = `${name}-${test}`;
    const cacheIndex = indexConfigOf(server());
    const replica = await openCache({ blobStore: s3.config(prefix), cacheIndex });
    const blobs = [blob(1000), blob(2000), blob(3000)];
    for (const x of blobs) await replica.cache.put(x.digest, x.bytes, meta());
    // The replica's own data directory: locked by it, as on a host where both run.
    const env = cliEnv(s3, prefix, server(), dirname(replica.dir));
    return { s3, prefix, cacheIndex, replica: replica.cache, blobs, env };
  };

  it('stats and ls run beside the replica, on its own data directory', async () => {
    const { blobs, env } = await fleetOfOne('stats');
    const stats = await layover(['cache', 'stats', ...SAFE], env).done;
    expect(stats.status, stats.stderr).toBe(0);
    expect(parse(stats.stdout)).toMatchObject({ entries: 3, bytes: 6000 });
    const ls = await layover(['cache', 'ls', ...SAFE], env).done;
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout.trim().split('\n').map((line) => line.split('\t')[0])).toEqual(blobs.map((x) => x.digest).reverse());
  }, 90_000);

  it('prune evicts for the fleet under the eviction lease, and the replica forgets what it removed', async () => {
    const { s3, cacheIndex, replica, blobs, env } = await fleetOfOne('prune');
    const index = await openTestIndex(cacheIndex);
    const held = await index.acquireLease(EVICTION_LEASE, 60_000);
    expect(held).not.toBeNull();
    const pruning = layover(['cache', 'prune', '--max-size', '4k', ...SAFE], env);
    // While the lease is held elsewhere the command waits, and says so.
    await until(() => pruning.stderr().includes('waiting for the eviction lease'), ARRIVES_WITHIN_MS);
    expect((await s3.objects()).length).toBe(3);
    expect(replica.stats().entries).toBe(3);
    await held!.release();
    const pruned = await pruning.done;
    expect(pruned.status, pruned.stderr).toBe(0);
    expect(parse(pruned.stdout)).toMatchObject({ removed: 2, freedBytes: 3000 });
    expect((await s3.objects()).length).toBe(1);
    await until(() => replica.stats().entries === 1, ARRIVES_WITHIN_MS);
    expect(replica.stat(blobs[2]!.digest)).toBeDefined();
  }, 90_000);

  it('verify removes a corrupt object for the fleet', async () => {
    const { s3, prefix, replica, blobs, env } = await fleetOfOne('verify');
    const corrupt = blobs[1]!;
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    onTestFinished(() => client.destroy());
    await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/blobs/sha256/${digestHex(corrupt.digest)}`, Body: Buffer.alloc(2000, 9) }));
    const verified = await layover(['cache', 'verify', ...SAFE], env).done;
    expect(verified.status, verified.stderr).toBe(0);
    expect(parse(verified.stdout)).toEqual({ checked: 3, removed: [corrupt.digest] });
    await until(() => replica.stat(corrupt.digest) === undefined, ARRIVES_WITHIN_MS);
    expect((await s3.objects()).length).toBe(2);
    expect(replica.stats().entries).toBe(2);
  }, 90_000);
});

function cliEnv(s3: S3Fixture, prefix: string, server: SharedIndexServer, dataDir: string): Record<string, string> {
  return {
    LAYOVER_DATA_DIR: dataDir,
    BLOB_STORE: `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.endpoint)}&pathStyle=true&region=us-east-1`,
    CACHE_INDEX: server.url,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
  };
}
