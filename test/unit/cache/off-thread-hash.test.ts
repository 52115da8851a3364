import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crashHashWorkerForTests, OffThreadHash, spareHashBatchesForTests } from '../../../src/cache/off-thread-hash.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';

const MiB = 1024 * 1024;

/** Feeds `bytes` in pieces of uneven sizes, as an upstream body arrives. */
function feed(hash: OffThreadHash, bytes: Buffer): void {
  let offset = 0;
  let step = 1;
  while (offset < bytes.length) {
    const size = Math.min(bytes.length - offset, (step * 7919) % (300 * 1024) + 1);
    hash.update(bytes.subarray(offset, offset + size));
    offset += size;
    step += 1;
  }
}

describe('OffThreadHash', () => {
  it.each([0, 1, 1000, MiB - 1, MiB, MiB + 1, 5 * MiB + 3])('hashes %i bytes as crypto does', async (size) => {
    const bytes = randomBytes(size);
    const hash = new OffThreadHash(digestOf(bytes));
    feed(hash, bytes);
    expect(await hash.digest()).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('keeps spare batches while hashes run, and none once the last one is digested or dropped', async () => {
    const blobs = [randomBytes(6 * MiB), randomBytes(6 * MiB + 5)];
    const hashes = blobs.map((bytes) => new OffThreadHash(digestOf(bytes)));
    const dropped = new OffThreadHash(`sha256:${'1'.repeat(64)}` as Digest);
    feed(dropped, randomBytes(2 * MiB + 1));
    feed(hashes[0]!, blobs[0]!);
    expect(await hashes[0]!.digest()).toBe(createHash('sha256').update(blobs[0]!).digest('hex'));
    // The batches the worker handed back while another hash still runs are kept for it.
    expect(spareHashBatchesForTests()).toBeGreaterThan(0);
    feed(hashes[1]!, blobs[1]!);
    dropped.drop();
    expect(await hashes[1]!.digest()).toBe(createHash('sha256').update(blobs[1]!).digest('hex'));
    expect(spareHashBatchesForTests()).toBe(0);
  });

  it('keeps the algorithm of the digest (sha512)', async () => {
    const bytes = randomBytes(3 * MiB + 17);
    const hash = new OffThreadHash(digestOf(bytes, 'sha512'));
    feed(hash, bytes);
    expect(await hash.digest()).toBe(createHash('sha512').update(bytes).digest('hex'));
  });

  it('keeps many hashes apart at once, and a dropped one does not disturb the others', async () => {
    const blobs = Array.from({ length: 6 }, (_, i) => randomBytes(2 * MiB + i * 1001));
    const hashes = blobs.map((bytes) => new OffThreadHash(digestOf(bytes)));
    const dropped = new OffThreadHash(`sha256:${'0'.repeat(64)}` as Digest);
    feed(dropped, randomBytes(3 * MiB));
    // Interleaved, as concurrent fills feed it.
    for (let offset = 0; offset < 3 * MiB; offset += 64 * 1024) {
      for (const [i, bytes] of blobs.entries()) if (offset < bytes.length) hashes[i]!.update(bytes.subarray(offset, offset + 64 * 1024));
    }
    dropped.drop();
    const hex = await Promise.all(hashes.map((hash) => hash.digest()));
    expect(hex).toEqual(blobs.map((bytes) => createHash('sha256').update(bytes).digest('hex')));
  });

  it('does not change the bytes it was given (they are copied, not handed over)', async () => {
    const bytes = randomBytes(2 * MiB);
    const copy = Buffer.from(bytes);
    const hash = new OffThreadHash(digestOf(bytes));
    hash.update(bytes);
    await hash.digest();
    expect(bytes.length).toBe(2 * MiB);
    expect(bytes.equals(copy)).toBe(true);
  });

  it('holds its feeder back while more than a few batches wait for the worker, then lets it go on', async () => {
    const bytes = randomBytes(12 * MiB);
    const hash = new OffThreadHash(digestOf(bytes));
    hash.update(bytes); // twelve batches handed over at once: the worker cannot have hashed them yet
    const room = hash.room();
    expect(room).toBeInstanceOf(Promise);
    await room;
    expect(await hash.digest()).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('fails the digest of every hash a crashed worker held, and hashes correctly again afterwards', async () => {
    const feeding = new OffThreadHash(`sha256:${'1'.repeat(64)}` as Digest);
    feeding.update(randomBytes(3 * MiB));
    const asked = new OffThreadHash(`sha256:${'2'.repeat(64)}` as Digest);
    // Enough that the worker is still hashing when it is ended (2 MiB it could finish first on a loaded machine).
    asked.update(randomBytes(32 * MiB));
    const digest = asked.digest();
    await crashHashWorkerForTests();
    await expect(digest).rejects.toThrow(/hash worker/);
    // Still fed after the crash: the new worker never had its start, so nothing it hashes counts.
    feeding.update(randomBytes(2 * MiB));
    await feeding.room();
    await expect(feeding.digest()).rejects.toThrow(/hash worker/);
    const bytes = randomBytes(3 * MiB + 5);
    const after = new OffThreadHash(digestOf(bytes));
    feed(after, bytes);
    expect(await after.digest()).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});
