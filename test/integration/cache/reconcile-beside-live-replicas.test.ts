/**
 * A replica that starts beside live ones over a shared index (a real redis-server, a real Postgres) and
 * one bucket (s3rver, with a front of ours for what s3rver lacks: see s3rver-front.ts):
 * - it must not drop the row of a blob another replica is committing (the row is written before the
 *   object completes): that would leave an object without its row once the commit lands;
 * - it leaves the fleet's reconcile to whoever holds the `reconcile` lease, and old rows without an
 *   object are still dropped by the holder;
 * - multipart uploads of a replica killed mid-fill are aborted at the next open, unless a fill of their
 *   digest is live (someone holds its fill lease), and not while they are young.
 */
import { CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fillLeaseName } from '../../../src/cache/lease.js';
import { RECONCILE_LEASE } from '../../../src/cache/reconcile.js';
import { digestHex, type Digest } from '../../../src/registry/digest.js';
import { blob, collect, meta, openCache, until } from '../../unit/cache/cache-fixture.js';
import { startS3rver, useS3rverCredentials } from '../../unit/cache/s3rver-fixture.js';
import { startS3Front, type S3Front } from '../../unit/cache/s3rver-front.js';
import { indexConfigOf, openTestIndex, sharedIndexServers } from './shared-index-servers.js';

const servers = sharedIndexServers();

/** A hang guard for messages between processes on a loaded machine, not a timing. */
const ARRIVES_WITHIN_MS = 30_000;
const HOUR = 3_600_000;

/** Begins a multipart upload of `digest` as a fill would, sends one part, and never completes it (a kill -9). */
async function leaveUpload(front: S3Front, prefix: string, digest: Digest): Promise<string> {
  const client = new S3Client({ endpoint: front.endpoint, region: 'us-east-1', forcePathStyle: true });
  onTestFinished(() => client.destroy());
  const Key = `${prefix}/blobs/sha256/${digestHex(digest)}`;
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'layover', Key }));
  await client.send(new UploadPartCommand({ Bucket: 'layover', Key, UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 7) }));
  return UploadId!;
}

describe.each(servers)('reconcile beside live replicas over a shared %s index', (name, server) => {
  const bucket = async (test: string) => {
    useS3rverCredentials();
    const s3 = await startS3rver();
    const front = await startS3Front(s3);
    const prefix = `${name}-${test}`;
    const cacheIndex = indexConfigOf(server());
    const index = await openTestIndex(cacheIndex);
    return { s3, front, prefix, index, shared: { blobStore: front.config(prefix), cacheIndex } };
  };

  it('keeps the row of a blob another replica is committing', async () => {
    const { front, index, shared } = await bucket('young-row');
    const a = await openCache(shared);
    const { bytes, digest } = blob(50_000);
    const hold = front.holdCommits();
    const put = a.cache.put(digest, bytes, meta({ source: 'quay.io/org/committing' }));
    // A has written the row; its object waits for the commit.
    await until(() => hold.held() === 1, ARRIVES_WITHIN_MS);
    const b = await openCache(shared);
    expect(b.cache.stat(digest)).toBeUndefined();
    expect(b.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ fleet: 'reconciled', youngRowsKept: 1, rowsDropped: 0 });
    hold.release();
    await put;

    const row = (await index.load()).entries.find((entry) => entry.digest === digest);
    expect(row).toMatchObject({ digest, size: bytes.length, source: 'quay.io/org/committing' });
    await until(() => b.cache.stat(digest) !== undefined, ARRIVES_WITHIN_MS);
    expect((await collect(b.cache.read(digest)!.stream)).equals(bytes)).toBe(true);
  }, 60_000);

  it('leaves the fleet to the holder of the reconcile lease; the holder drops old rows without an object', async () => {
    const { index, shared } = await bucket('lease');
    const { digest } = blob(1000);
    // A row whose object went long ago (its replica crashed between the row and the commit).
    await index.putEntry({ digest, size: 1000, mediaType: null, kind: 'blob', created: Date.now() - HOUR, lastAccess: Date.now() - HOUR, source: 'quay.io/org/lost' });
    await index.settled();
    const held = await index.acquireLease(RECONCILE_LEASE, 60_000);
    expect(held).not.toBeNull();
    const reader = await openCache(shared);
    expect(reader.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ fleet: 'left to another replica', rowsDropped: 0 });
    expect((await index.load()).entries.some((entry) => entry.digest === digest)).toBe(true);

    await held!.release();
    const holder = await openCache(shared);
    expect(holder.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ fleet: 'reconciled', rowsDropped: 1 });
    expect((await index.load()).entries.some((entry) => entry.digest === digest)).toBe(false);
  }, 60_000);

  it('aborts an upload left by a killed replica at the next open, but not while its fill lease is held, nor while it is young', async () => {
    const { s3, front, prefix, index, shared } = await bucket('uploads');
    const left = blob(1000);
    const fresh = blob(1000);
    const abandoned = await leaveUpload(front, prefix, left.digest);
    const young = await leaveUpload(front, prefix, fresh.digest);
    front.backdate(abandoned, 2 * 60 * 60_000);

    const fill = await index.acquireLease(fillLeaseName(left.digest), 60_000, { unfenced: true });
    expect(fill).not.toBeNull();
    const first = await openCache(shared);
    expect(first.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ uploadsAborted: 0, uploadsLive: 1 });
    expect(await s3.openUploads()).toEqual(expect.arrayContaining([abandoned, young]));

    await fill!.release();
    const second = await openCache(shared);
    expect(second.logs.find((l) => l.msg === 'cache index reconciled')).toMatchObject({ uploadsAborted: 1, uploadsLive: 0 });
    expect(await s3.openUploads()).toEqual([young]);
    expect(front.openUploads()).toEqual([young]);
    // The probe gave the fill lease back: a fill of that digest can begin.
    const again = await index.acquireLease(fillLeaseName(left.digest), 60_000, { unfenced: true });
    expect(again).not.toBeNull();
    await again!.release();
  }, 60_000);
});
