import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OffThreadHash, spareHashBatchesForTests } from '../../../src/cache/off-thread-hash.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';

const MiB = 1024 * 1024;

/** Memory in buffers now; a batch that is only dropped still counts here until a collection finds it. */
const bufferBytes = (): number => process.memoryUsage().arrayBuffers;

describe('the hash worker\'s batches (1 MiB each) once no hash needs them', () => {
  it('are freed at once when the last running hash is digested: none stays behind in memory', async () => {
    const blob = randomBytes(8 * MiB + 7);
    const before = bufferBytes();
    const hash = new OffThreadHash(digestOf(blob));
    for (let offset = 0; offset < blob.length; offset += 256 * 1024) hash.update(blob.subarray(offset, offset + 256 * 1024));
    expect(await hash.digest()).toBe(createHash('sha256').update(blob).digest('hex'));
    expect(spareHashBatchesForTests()).toBe(0);
    // Every batch has come back from the worker by now (its answers arrive in order).
    expect(bufferBytes() - before).toBeLessThan(MiB);
  });

  it('are freed at once when a small blob is hashed in place, or a hash is dropped', async () => {
    const small = Array.from({ length: 12 }, (_, i) => randomBytes(4096 + i));
    const before = bufferBytes();
    for (const bytes of small) {
      const hash = new OffThreadHash(digestOf(bytes));
      hash.update(bytes);
      expect(await hash.digest()).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
    for (let i = 0; i < 4; i++) {
      const dropped = new OffThreadHash(`sha256:${String(i).repeat(64)}` as Digest);
      dropped.update(small[i]!);
      dropped.drop();
    }
    expect(bufferBytes() - before).toBeLessThan(MiB);
  });
});
