/**
 * Shared indexes (real Redis and Postgres): a merging write, a record written back over what was merged
 * (putRecordOver) or a batch of access times (putEntries), is a compare-and-set. Another replica's write
 * to the same row between the merge's read and its write is merged again, never overwritten. The test
 * puts that write there: the first backend call of the raced index's next write (its read) is followed
 * by the other replica's write before the raced index goes on.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { CacheIndex } from '../../../src/cache/cache-index.js';
import { KeyvCacheIndex, type IndexBackend } from '../../../src/cache/indexes/keyv-index.js';
import { openCacheIndex } from '../../../src/cache/indexes/open-cache-index.js';
import { openPostgresBackend } from '../../../src/cache/indexes/postgres.js';
import { openRedisBackend } from '../../../src/cache/indexes/redis.js';
import { Secret } from '../../../src/config/secret.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { entry } from '../../unit/cache/cache-index-suite.js';
import { indexConfigOf, sharedIndexServers, type SharedIndexServer } from './shared-index-servers.js';

const openBackend = (kind: 'redis' | 'postgres', server: SharedIndexServer): Promise<IndexBackend> =>
  (kind === 'redis' ? openRedisBackend : openPostgresBackend)(new Secret(server.url), captureLogger().logger);

describe.each(sharedIndexServers())('merging writes on a shared %s index', (kind, server) => {
  const open = {
    backend: () => openBackend(kind, server()),
    index: () => openCacheIndex(indexConfigOf(server()), { sqliteFile: '/nonexistent/unused', logger: captureLogger().logger }),
  };
  /** An index whose backend runs `between` (when set) right after its next call: `always` keeps it set. */
  const raced = async (): Promise<{ index: KeyvCacheIndex; other: CacheIndex; between: (write: () => Promise<unknown>, always?: boolean) => void }> => {
    const backend = await open.backend();
    let pending: { write: () => Promise<unknown>; always: boolean } | undefined;
    const index = new KeyvCacheIndex(
      {
        ...backend,
        bound: async (call) => {
          const result = await (backend.bound ? backend.bound(call) : call());
          const next = pending;
          if (!next?.always) pending = undefined;
          if (next) await next.write();
          return result;
        },
      },
      captureLogger().logger,
      { retryMs: 50 },
    );
    const other = await open.index();
    onTestFinished(async () => {
      await index.close();
      await other.close();
    });
    return { index, other, between: (write, always = false) => (pending = { write, always }) };
  };
  const unique = (what: string): string => `${what}-${Date.now()}-${Math.random().toString(16).slice(2)}`;

  it('a record written back over what it merged stays unwritten when another replica wrote it in between', async () => {
    const { index, other, between } = await raced();
    const key = unique('image');
    await other.putRecord(key, { members: ['a.test/one'] });
    between(() => other.putRecord(key, { members: ['a.test/one', 'c.test/three'] }));
    expect(await index.putRecordOver(key, { members: ['a.test/one'] }, { members: ['a.test/one', 'b.test/two'] })).toBe(false);
    expect(await other.readRecord(key)).toEqual({ members: ['a.test/one', 'c.test/three'] });
    // Nothing in between: it lands.
    expect(await index.putRecordOver(key, { members: ['a.test/one', 'c.test/three'] }, { members: ['a.test/one', 'b.test/two', 'c.test/three'] })).toBe(true);
    expect(await other.readRecord(key)).toEqual({ members: ['a.test/one', 'b.test/two', 'c.test/three'] });
  });

  it('a record expected absent is not written over one another replica made in between', async () => {
    const { index, other, between } = await raced();
    const key = unique('new-image');
    between(() => other.putRecord(key, { members: ['c.test/three'] }));
    expect(await index.putRecordOver(key, undefined, { members: ['b.test/two'] })).toBe(false);
    expect(await other.readRecord(key)).toEqual({ members: ['c.test/three'] });
  });

  it('an access time never moves back a later one another replica wrote in between', async () => {
    const { index, other, between } = await raced();
    const i = 1_000_000 + Math.floor(Math.random() * 1_000_000);
    await other.putEntry(entry(i, 100));
    between(() => other.putEntries([entry(i, 300)]));
    expect(await index.putEntries([entry(i, 200)])).toEqual([]);
    expect((await other.readEntry(entry(i).digest))?.lastAccess).toBe(300);
  });

  it('replicas counting up one record by compare-and-set at once lose no count', async () => {
    const replicas = await Promise.all([1, 2, 3, 4].map(() => open.index()));
    onTestFinished(async () => {
      await Promise.all(replicas.map((replica) => replica.close()));
    });
    const key = unique('counter');
    await replicas[0]!.putRecord(key, 0);
    const countUp = async (replica: CacheIndex): Promise<void> => {
      for (let counted = 0; counted < 25; ) {
        const seen = (await replica.readRecord(key)) as number;
        if (await replica.putRecordOver(key, seen, seen + 1)) counted += 1;
      }
    };
    await Promise.all(replicas.map(countUp));
    expect(await replicas[0]!.readRecord(key)).toBe(100);
  });

  it('a row changed under every merge fails the write, which is replayed once the row holds still', async () => {
    const { index, other, between } = await raced();
    const i = 2_000_000 + Math.floor(Math.random() * 1_000_000);
    await other.putEntry(entry(i, 100));
    let access = 300;
    between(() => other.putEntries([entry(i, (access += 1))]), true);
    expect(await index.putEntries([entry(i, 1_000)])).toEqual([entry(i).digest]);
    expect(index.pendingWrites).toBe(1);
    between(() => Promise.resolve());
    for (const deadline = Date.now() + 10_000; index.pendingWrites > 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(index.pendingWrites).toBe(0);
    expect((await other.readEntry(entry(i).digest))?.lastAccess).toBe(1_000);
  });
});
