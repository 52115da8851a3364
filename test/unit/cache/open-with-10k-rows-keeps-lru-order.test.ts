import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { openCache, tempDir } from './cache-fixture.js';
import { writeManyBlobs } from './many-blobs-fixture.js';

// The open reads the index in pages of whole queries and builds the LRU in one pass (issue 13): the
// order, the entries and the records must be those the index holds, across page boundaries.

describe('opening a cache of 10,000 blobs', () => {
  it('loads every row and record and orders the LRU by last use, as the index says', { timeout: 120_000 }, async () => {
    const dir = join(await tempDir(), 'cache');
    const written = await writeManyBlobs(dir, { count: 10_000, repository: 'registry.test/bench/many', images: 3, layersPerImage: 4, pinTag: 'v1', logger: pino({ level: 'warn' }) });
    const { cache, logs } = await openCache({ dir });
    expect(cache.list().reverse()).toEqual(written.oldestFirst);
    expect(cache.recordKeys('access:member:')).toHaveLength(written.oldestFirst.length);
    expect(cache.pins.list()).toEqual([expect.objectContaining({ scope: expect.objectContaining({ kind: 'tag', tag: 'v1' }) })]);
    expect(await cache.pins.pinnedDigests()).toEqual(new Set([written.manifests[1]!.entry.digest, ...written.manifests[1]!.layers]));
    await cache.reconciled();
    expect(logs.find((line) => line.msg === 'cache index reconciled')).toMatchObject({ entries: written.oldestFirst.length, rowsDropped: 0, reindexed: 0, filesRemoved: 0 });
  });

  it('reads back values whose strings begin with a colon, as keyv wrote them', async () => {
    const dir = await tempDir();
    const index = await openSqliteIndex(join(dir, 'index.sqlite'), captureLogger().logger);
    const tricky = { a: ':not-base64', b: '::two', c: [':x', 'plain', { d: ':base64:AAEC' }], e: null, f: 3 };
    await index.putRecords([['tricky', tricky], ['colon', ':'], ['plain', 'text']]);
    await index.putRecord('one', ['::y']);
    const { records, invalid } = await (await reopen(index, dir)).load();
    expect(invalid).toEqual([]);
    expect(records.get('tricky')).toEqual(tricky);
    expect(records.get('colon')).toBe(':');
    expect(records.get('plain')).toBe('text');
    expect(records.get('one')).toEqual(['::y']);
  });
});

async function reopen(index: Awaited<ReturnType<typeof openSqliteIndex>>, dir: string) {
  await index.close();
  const again = await openSqliteIndex(join(dir, 'index.sqlite'), captureLogger().logger);
  return { load: async () => { try { return await again.load(); } finally { await again.close(); } } };
}
