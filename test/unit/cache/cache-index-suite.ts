/**
 * The one test suite every CacheIndex implementation passes (SQLite, Redis, Postgres), run by
 * test/integration/cache/cache-index-{sqlite,redis,postgres}.test.ts against real servers.
 *
 *   cacheIndexSuite('redis', { open: (options) => openCacheIndex(config, { ...options, ... }), outage: redis });
 */
import { createHash, randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { CacheIndexUnavailableError, IndexWriteError, type CacheIndex } from '../../../src/cache/cache-index.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger, type LogLine } from '../../helpers/capture-logger.js';

export interface IndexHarness {
  /** A new index object on the same backend (the same file, Redis or database) as every other one. */
  open(options: { retryMs: number; logger: ReturnType<typeof captureLogger>['logger'] }): Promise<CacheIndex>;
  /** The backend's server, for the outage case (none for SQLite, which has no server to lose). */
  outage?: { stop(): Promise<void>; start(): Promise<void>; password: string };
}

export function entry(i: number, lastAccess = i): BlobEntry {
  const hex = createHash('sha256').update(`entry ${i}`).digest('hex');
  return { digest: `sha256:${hex}` as Digest, size: i, mediaType: i % 2 ? null : 'application/vnd.oci.image.manifest.v1+json', kind: i % 2 ? 'blob' : 'manifest', created: i, lastAccess, source: `quay.io/org/repo${i}` };
}

const byDigest = (a: BlobEntry, b: BlobEntry): number => a.digest.localeCompare(b.digest);

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await check()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function cacheIndexSuite(name: string, harness: IndexHarness): void {
  let logs: LogLine[] = [];

  /** An index closed when the test ends. */
  const open = async (retryMs = 100): Promise<CacheIndex> => {
    const captured = captureLogger('debug');
    logs = captured.lines;
    const index = await harness.open({ retryMs, logger: captured.logger });
    onTestFinished(() => index.close());
    return index;
  };

  describe(`CacheIndex: ${name}`, () => {
    // Every test starts from an empty index, emptied through the interface itself.
    beforeEach(async () => {
      const index = await harness.open({ retryMs: 100, logger: captureLogger().logger });
      const { entries, records, invalid } = await index.load();
      await index.deleteEntries(entries.map((e) => e.digest));
      await index.deleteKeys([...[...records.keys()].map((key) => `record:${key}`), ...invalid]);
      await index.close();
    });

    it('loads back the entries and records written, in another index object on the same backend', async () => {
      const writer = await open();
      await writer.putEntry(entry(1));
      expect(await writer.putEntries([entry(2), entry(3)])).toEqual([]);
      await writer.putRecord('tag:quay.io/org/repo:latest', { digest: entry(1).digest, at: 5 });
      await writer.putRecord('nothing', null);
      await writer.settled();
      const loaded = await (await open()).load();
      expect(loaded.entries.sort(byDigest)).toEqual([entry(1), entry(2), entry(3)].sort(byDigest));
      expect(loaded.records).toEqual(new Map<string, unknown>([['tag:quay.io/org/repo:latest', { digest: entry(1).digest, at: 5 }], ['nothing', null]]));
      expect(loaded.invalid).toEqual([]);
    });

    it('reads one blob\'s row as the backend holds it now, from another index object', async () => {
      const [writer, reader] = [await open(), await open()];
      await writer.putEntry(entry(4));
      expect(await reader.readEntry(entry(4).digest)).toEqual(entry(4));
      expect(await reader.readEntry(entry(5).digest)).toBeUndefined();
    });

    it('deletes entries, records and rows by key; deleting what is not there is no error', async () => {
      const index = await open();
      expect(await index.putEntries([entry(1), entry(2), entry(3)])).toEqual([]);
      await index.putRecord('a', 1);
      await index.putRecord('b', 2);
      await index.deleteEntries([entry(1).digest, entry(9).digest]);
      await index.deleteKeys([`blob:${entry(2).digest}`, 'blob:never-written']);
      await index.deleteRecord('a');
      await index.deleteRecord('never-written');
      const loaded = await (await open()).load();
      expect(loaded.entries).toEqual([entry(3)]);
      expect(loaded.records).toEqual(new Map([['b', 2]]));
    });

    it('lands writes made without waiting as their last write of each key, sets and deletes mixed', async () => {
      const index = await open();
      await index.putRecord('deleted-last', 'old');
      // Issued together they wait for the queue together, and go to the backend as one batch.
      await Promise.all([
        index.putRecord('deleted-last', 'newer'),
        index.deleteRecord('deleted-last'),
        index.deleteRecord('set-last'),
        index.putRecord('set-last', 'kept'),
        index.putRecord('twice', 1),
        index.putRecord('twice', 2),
        index.putEntry(entry(1)),
        index.deleteEntries([entry(1).digest]),
        index.putEntries([entry(2)]),
        index.putEntries([entry(2, 7)]),
      ]);
      const loaded = await (await open()).load();
      expect(loaded.records).toEqual(new Map<string, unknown>([['set-last', 'kept'], ['twice', 2]]));
      expect(loaded.entries).toEqual([entry(2, 7)]);
    });

    it('writes a record over the value it expects only, and says whether it did (a merged record written back)', async () => {
      const index = await open();
      await index.putRecord('merged', { members: ['a.test/one'], holders: ['@a.test'] });
      expect(await index.putRecordOver('merged', { members: ['b.test/two'] }, { members: ['x'] })).toBe(false);
      expect(await index.putRecordOver('merged', { members: ['a.test/one'], holders: ['@a.test'] }, { members: ['a.test/one', 'b.test/two'] })).toBe(true);
      expect(await index.putRecordOver('never-written', { members: [] }, { members: ['x'] })).toBe(false);
      const loaded = await (await open()).load();
      expect(loaded.records).toEqual(new Map([['merged', { members: ['a.test/one', 'b.test/two'] }]]));
    });

    it('loads 5,000 entries (several pages) whole', { timeout: 60_000 }, async () => {
      const index = await open();
      const entries = Array.from({ length: 5_000 }, (_, i) => entry(i));
      expect(await index.putEntries(entries)).toEqual([]);
      await index.putRecord('one', 1);
      const loaded = await (await open()).load();
      expect(loaded.entries.length).toBe(5_000);
      expect(loaded.entries.sort(byDigest)).toEqual(entries.sort(byDigest));
      expect(loaded.records.size).toBe(1);
    });

    it('applies concurrent writes in call order: the last write of a key wins', async () => {
      const index = await open();
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < 200; i++) {
        writes.push(index.putEntry(entry(i, 1)));
        if (i % 3 === 0) writes.push(index.deleteEntries([entry(i).digest]));
        if (i % 5 === 0) writes.push(index.putEntries([entry(i, 2)]));
        writes.push(index.putRecord(`r${i % 10}`, i));
      }
      await Promise.all(writes);
      await index.settled();
      const loaded = await (await open()).load();
      const expected = Array.from({ length: 200 }, (_, i) => i)
        .filter((i) => i % 3 !== 0 || i % 5 === 0)
        .map((i) => entry(i, i % 5 === 0 ? 2 : 1));
      expect(loaded.entries.sort(byDigest)).toEqual(expected.sort(byDigest));
      expect(loaded.records).toEqual(new Map(Array.from({ length: 10 }, (_, r) => [`r${r}`, 190 + r])));
    });

    it('shares one backend: two index objects see each other’s writes at their next load', async () => {
      const a = await open();
      const b = await open();
      await a.putEntry(entry(1));
      await b.putEntry(entry(2));
      await b.putRecord('from-b', 'b');
      await a.deleteRecord('from-b');
      await a.putRecord('from-a', 'a');
      expect((await b.load()).entries.sort(byDigest)).toEqual([entry(1), entry(2)].sort(byDigest));
      expect((await a.load()).records).toEqual(new Map([['from-a', 'a']]));
    });

    it('never moves a row’s lastAccess back: a replica’s older batched access time loses to another’s newer one', async () => {
      const a = await open();
      const b = await open();
      expect(await a.putEntries([entry(1, 2_000)])).toEqual([]);
      expect(await b.putEntries([entry(1, 1_000)])).toEqual([]);
      expect((await a.load()).entries).toEqual([entry(1, 2_000)]);
      expect(await b.putEntries([entry(1, 3_000)])).toEqual([]);
      expect((await a.load()).entries).toEqual([entry(1, 3_000)]);
    });

    it('reads one record as the backend holds it now', async () => {
      const a = await open();
      const b = await open();
      await a.putRecord('tag:quay.io/org/app:1', { digest: entry(1).digest });
      expect(await b.readRecord('tag:quay.io/org/app:1')).toEqual({ digest: entry(1).digest });
      expect(await b.readRecord('never-written')).toBeUndefined();
    });

    it(harness.outage ? 'carries changes from one index object to the others, origin included' : 'has no change feed (one process owns it)', async () => {
      const a = await open();
      const b = await open();
      if (!harness.outage) return void expect(b.feed).toBeUndefined();
      const heard: Array<{ change: unknown; origin: string }> = [];
      await b.feed!.subscribe({ change: (change, origin) => heard.push({ change, origin }), resubscribed: () => undefined });
      const removed = Array.from({ length: 100 }, (_, i) => entry(i).digest);
      await a.feed!.publish({ type: 'committed', entry: entry(1) }, 'replica-a');
      await a.feed!.publish({ type: 'removed', digests: removed }, 'replica-a');
      await a.feed!.publish({ type: 'record-set', key: `tag:${'x'.repeat(2_000)}` }, 'replica-a');
      await waitFor('the messages', async () => heard.length >= 5);
      expect(heard[0]).toEqual({ change: { type: 'committed', entry: entry(1) }, origin: 'replica-a' });
      // Split into messages that fit a Postgres NOTIFY; together they name every digest.
      expect(heard.slice(1, -1).flatMap(({ change }) => (change as { digests: string[] }).digests)).toEqual(removed);
      expect(heard.at(-1)).toEqual({ change: { type: 'record-set', key: `tag:${'x'.repeat(2_000)}` }, origin: 'replica-a' });
    });

    describe('lease', () => {
      const leaseName = (): string => `test-${randomUUID().slice(0, 8)}`;

      it('is held by one index object at a time, with a larger fencing token each time', async () => {
        const a = await open();
        const b = await open();
        const name = leaseName();
        const first = await a.acquireLease(name, 30_000);
        expect(first).not.toBeNull();
        expect(await b.acquireLease(name, 30_000)).toBeNull();
        expect(await a.acquireLease(name, 30_000)).toBeNull();
        expect(await first!.renew()).toBe(true);
        await first!.release();
        const second = await b.acquireLease(name, 30_000);
        expect(second?.token).toBeGreaterThan(first!.token);
        expect(await a.acquireLease(leaseName(), 30_000)).not.toBeNull();
        await second!.release();
      });

      it('expires; the stale holder can neither renew it nor release the new holder’s lease', async () => {
        const a = await open();
        const b = await open();
        const name = leaseName();
        const stale = await a.acquireLease(name, 200);
        expect(stale).not.toBeNull();
        let taken = await b.acquireLease(name, 30_000);
        await waitFor('the lease to expire', async () => (taken ??= await b.acquireLease(name, 30_000)) !== null);
        expect(taken!.token).toBeGreaterThan(stale!.token);
        expect(await stale!.renew()).toBe(false);
        await stale!.release();
        expect(await a.acquireLease(name, 30_000)).toBeNull();
        expect(await taken!.renew()).toBe(true);
        await taken!.release();
        expect(await a.acquireLease(name, 30_000)).not.toBeNull();
      });

      it('refuses names that do not fit a key and impossible durations', async () => {
        const index = await open();
        await expect(index.acquireLease('a b*', 1_000)).rejects.toThrow(RangeError);
        await expect(index.acquireLease('x'.repeat(161), 1_000)).rejects.toThrow(RangeError);
        await expect(index.acquireLease('ok', 0)).rejects.toThrow(RangeError);
        await expect(index.acquireLease('ok', 1_000, { note: 'n'.repeat(201) })).rejects.toThrow(RangeError);
        await expect(index.leaseNote('a b*')).rejects.toThrow(RangeError);
      });

      it('tells anyone who asks the holder\'s note while it is held, and nothing once it is released or expired', async () => {
        const a = await open();
        const b = await open();
        const name = leaseName();
        expect(await b.leaseNote(name)).toBeNull();
        const held = await a.acquireLease(name, 30_000, { note: '127.0.0.11:443\nsecond line' });
        expect(await b.leaseNote(name)).toBe('127.0.0.11:443\nsecond line');
        await held!.release();
        expect(await b.leaseNote(name)).toBeNull();
        const silent = await a.acquireLease(name, 30_000);
        expect(await b.leaseNote(name)).toBe('');
        await silent!.release();
        const short = await a.acquireLease(name, 200, { note: 'gone soon' });
        expect(short).not.toBeNull();
        await waitFor('the lease to expire', async () => (await b.leaseNote(name)) === null);
      });

      it('takes an unfenced lease (a fill per digest) once at a time, with token 0, and takes it again after its release', async () => {
        const a = await open();
        const b = await open();
        const name = `fill.sha256.${'ab'.repeat(32)}`;
        const first = await a.acquireLease(name, 30_000, { unfenced: true, note: 'a' });
        expect(first?.token).toBe(0);
        expect(await b.acquireLease(name, 30_000, { unfenced: true, note: 'b' })).toBeNull();
        expect(await first!.renew()).toBe(true);
        await first!.release();
        const second = await b.acquireLease(name, 30_000, { unfenced: true, note: 'b' });
        expect(second?.token).toBe(0);
        expect(await a.leaseNote(name)).toBe('b');
        await second!.release();
      });
    });

    if (harness.outage) {
      const server = harness.outage;
      it('keeps failed writes while the backend is down and replays them when it is back, without a new index object', { timeout: 120_000 }, async () => {
        const index = await open();
        const indexLogs = logs;
        const secret = server.password;
        await index.putEntry(entry(1));
        await index.putEntry(entry(2));
        await server.stop();
        let restarted = false;
        onTestFinished(async () => {
          if (!restarted) await server.start();
        });
        await expect(index.putEntry(entry(3))).rejects.toThrow(IndexWriteError);
        expect(await index.putEntries([entry(4), entry(5)])).toEqual([entry(4).digest, entry(5).digest]);
        await expect(index.deleteEntries([entry(1).digest])).rejects.toThrow(IndexWriteError);
        await expect(index.putRecord('during', 'outage')).rejects.toThrow(IndexWriteError);
        // Written while down, then overwritten while still down: only the last value may land.
        await expect(index.putEntry(entry(2, 7))).rejects.toThrow(IndexWriteError);
        await expect(index.putEntry(entry(2, 8))).rejects.toThrow(IndexWriteError);
        // A load while the backend is down fails whole: never part of the rows, which would look like evictions.
        await expect(index.load()).rejects.toThrow(CacheIndexUnavailableError);
        const failures = indexLogs.filter((line) => line.msg.startsWith('cache index: write failed'));
        // Rate-limited: six failed writes, one line.
        expect(failures.length).toBe(1);
        await server.start();
        restarted = true;
        // The same object writes again once its client has reconnected (a capped backoff, a few seconds at most).
        await waitFor('a write to succeed again', () => index.putEntry(entry(6)).then(() => true, () => false));
        const expected = [entry(2, 8), entry(3), entry(4), entry(5), entry(6)].sort(byDigest);
        await waitFor('the failed writes to be replayed', async () => {
          const reader = await harness.open({ retryMs: 100, logger: captureLogger().logger });
          const loaded = await reader.load().finally(() => reader.close());
          return JSON.stringify(loaded.entries.sort(byDigest)) === JSON.stringify(expected) && loaded.records.get('during') === 'outage';
        });
        expect(indexLogs.some((line) => line.msg.includes('failed writes replayed'))).toBe(true);
        // node-postgres hangs its client (with the password) on its errors: none of it reaches a log line.
        const text = JSON.stringify(indexLogs);
        expect(text).not.toContain('password');
        expect(text).not.toContain(secret);
      });
    }
  });
}
