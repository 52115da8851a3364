import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { IndexWriteError } from '../../../src/cache/cache-index.js';
import { type IndexBackend, KeyvCacheIndex } from '../../../src/cache/indexes/keyv-index.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { entry } from './cache-index-suite.js';

/**
 * Writes to the index that arrive while one is in flight wait together and go as one batch (a group
 * commit): under load one backend call per write let them pile up behind each other. keyv's own
 * in-memory store plays the backend; its batch calls are counted, and the first can be held open.
 */
class CountedKeyv extends Keyv<unknown> {
  setManyCalls: number[] = [];
  deleteManyCalls = 0;
  /** The setMany call (counted from 1) that throws. */
  failCall = 0;
  #hold: Promise<void> | undefined;
  #release: (() => void) | undefined;

  constructor() {
    super({ throwOnErrors: true, emitErrors: false });
  }

  /** The next setMany waits until release(). */
  holdNext(): void {
    this.#hold = new Promise((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.#release?.();
  }

  override async setMany<Value>(entries: Array<{ key: string; value: Value }>): Promise<boolean[]> {
    this.setManyCalls.push(entries.length);
    const hold = this.#hold;
    this.#hold = undefined;
    await hold;
    if (this.setManyCalls.length === this.failCall) throw new Error('the backend refused the batch');
    return super.setMany(entries);
  }

  override async deleteMany(keys: string[]): Promise<boolean> {
    this.deleteManyCalls += 1;
    return super.deleteMany(keys);
  }
}

function openIndex(): { index: KeyvCacheIndex; keyv: CountedKeyv } {
  const keyv = new CountedKeyv();
  const backend: IndexBackend = {
    name: 'memory',
    keyv,
    rows: async function* () {
      // Nothing to load: these tests read back through keyv.
    },
    acquireLease: () => Promise.reject(new Error('no leases here')),
    leaseNote: () => Promise.resolve(null),
    close: () => Promise.resolve(),
  };
  return { index: new KeyvCacheIndex(backend, captureLogger().logger, { retryMs: 60_000 }), keyv };
}

describe('index writes that wait for the queue', () => {
  it('go to the backend as one batch, and every caller learns its write landed', async () => {
    const { index, keyv } = openIndex();
    keyv.holdNext();
    const first = index.putRecord('first', 1);
    // The first write is in flight (held); these wait behind it.
    await new Promise((resolve) => setImmediate(resolve));
    const waiting = Array.from({ length: 200 }, (_, i) => index.putRecord(`waiting-${i}`, i));
    keyv.release();
    await Promise.all([first, ...waiting]);
    expect(keyv.setManyCalls).toEqual([1, 200]);
    expect(await keyv.get('record:waiting-199')).toBe(199);
    expect(await keyv.get('record:first')).toBe(1);
    await index.close();
  });

  it('send each key once, its last write: sets in one call, deletes in another', async () => {
    const { index, keyv } = openIndex();
    keyv.holdNext();
    const held = index.putRecord('held', true);
    await new Promise((resolve) => setImmediate(resolve));
    // Even keys are set, then deleted; odd ones deleted, then set.
    const writes = Array.from({ length: 10 }, (_, i) =>
      i % 2 === 0 ? [index.putRecord(`key-${i}`, i), index.deleteRecord(`key-${i}`)] : [index.deleteRecord(`key-${i}`), index.putRecord(`key-${i}`, i)],
    ).flat();
    keyv.release();
    await Promise.all([held, ...writes]);
    expect(keyv.setManyCalls).toEqual([1, 5]);
    expect(keyv.deleteManyCalls).toBe(1);
    expect(await keyv.get('record:key-0')).toBeUndefined();
    expect(await keyv.get('record:key-1')).toBe(1);
    await index.close();
  });

  it('keep the later access time of a row written twice in one batch, and of the stored row', async () => {
    const { index, keyv } = openIndex();
    const stored = entry(7, 50);
    await index.putEntry(stored);
    keyv.holdNext();
    const held = index.putRecord('held', true);
    await new Promise((resolve) => setImmediate(resolve));
    const fresh = entry(8, 40);
    const writes = [
      // A commit, then a flush of an older access time for the same blob.
      index.putEntry(fresh),
      index.putEntries([{ ...fresh, lastAccess: 30 }]),
      // An access time older than the stored row's.
      index.putEntries([{ ...stored, lastAccess: 20 }]),
    ];
    keyv.release();
    await Promise.all([held, ...writes]);
    expect(((await keyv.get(`blob:${fresh.digest}`)) as { lastAccess: number }).lastAccess).toBe(40);
    expect(((await keyv.get(`blob:${stored.digest}`)) as { lastAccess: number }).lastAccess).toBe(50);
    await index.close();
  });

  it('that fail reject each caller with its own keys, and are kept for a replay', async () => {
    const { index, keyv } = openIndex();
    // The group behind the held write is the one that fails.
    keyv.failCall = 2;
    keyv.holdNext();
    const held = index.putRecord('held', true);
    await new Promise((resolve) => setImmediate(resolve));
    const one = index.putRecord('one', 1);
    const two = index.putRecords([
      ['two', 2],
      ['three', 3],
    ]);
    keyv.release();
    await held;
    const [first, second] = await Promise.allSettled([one, two]);
    expect(first.status).toBe('rejected');
    expect((first as PromiseRejectedResult).reason).toBeInstanceOf(IndexWriteError);
    expect(String((first as PromiseRejectedResult).reason.message)).toContain('record one was not written');
    expect(String((second as PromiseRejectedResult).reason.message)).toContain('2 records were not written');
    expect(index.pendingWrites).toBe(3);
    expect(keyv.setManyCalls).toEqual([1, 3]);
    await index.close();
  });
});
