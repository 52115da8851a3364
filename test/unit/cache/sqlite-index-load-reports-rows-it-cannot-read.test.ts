import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, expect, it } from 'vitest';
import type { BlobEntry } from '../../../src/cache/blob-types.js';
import { openSqliteIndex } from '../../../src/cache/indexes/sqlite.js';
import type { Digest } from '../../../src/registry/digest.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { tempDir } from './cache-fixture.js';

// The SQLite index loads its rows as one JSON text per page, built by SQLite (issue 13). The index file
// is not trusted: a value that is not text, or not JSON, is one unreadable row, never a failed open; rows
// outside the namespace are not Layover's; pages end where they should, whatever the rowids.

const entry = (i: number): BlobEntry => ({
  digest: `sha256:${i.toString(16).padStart(64, '0')}` as Digest,
  size: i,
  mediaType: i % 2 === 0 ? null : ':odd',
  kind: 'blob',
  created: 1_000 + i,
  lastAccess: 2_000 + i,
  source: 'registry.test/many',
});

describe('loading a SQLite index', () => {
  it('reports rows whose value is a blob, a number, NULL or not JSON as unreadable, and loads the rest', async () => {
    const file = join(await tempDir(), 'index.sqlite');
    const { logger } = captureLogger();
    const index = await openSqliteIndex(file, logger);
    const entries = Array.from({ length: 12_000 }, (_, i) => entry(i));
    expect(await index.putEntries(entries)).toEqual([]);
    await index.putRecord('tag:a', { digest: entries[0]!.digest });
    await index.close();

    // Written by something else (another program, a damaged file), between two opens.
    const raw = new DatabaseSync(file);
    const insert = raw.prepare('INSERT INTO keyv (key, value) VALUES (?, ?)');
    insert.run('layover:blob:sha256:bad-blob-value', Buffer.from('{"value":{}}'));
    insert.run('layover:record:number', 42);
    insert.run('layover:record:null', null);
    insert.run('layover:record:not-json', '{"value":');
    insert.run('layover:record:no-value', '{"other":1}');
    insert.run('other-namespace:record:x', '{"value":1}');
    insert.run('layover:record:spaced', '{ "value" : [ ":x" , "::y" ] }');
    // JSON, but not an object: a string holding one, an array.
    insert.run('layover:record:json-string', JSON.stringify('{"value":1}'));
    insert.run('layover:record:array', '[{"value":1}]');
    insert.run('layover:record:escapes', '{"value":{"text":"a\\u0000b\\"ü\\n","big":9007199254740991,"float":1.5e3}}');
    // Rowids far apart: a page ends by its count of rows, not by a range of rowids.
    raw.prepare('INSERT INTO keyv (rowid, key, value) VALUES (?, ?, ?)').run(10_000_000, 'layover:record:far', '{"value":"far"}');
    raw.close();

    const again = await openSqliteIndex(file, logger);
    try {
      const loaded = await again.load();
      expect(loaded.entries).toHaveLength(entries.length);
      expect(new Map(loaded.entries.map((e) => [e.digest, e]))).toEqual(new Map(entries.map((e) => [e.digest, e])));
      expect(loaded.invalid.sort()).toEqual(['blob:sha256:bad-blob-value', 'record:array', 'record:json-string', 'record:no-value', 'record:not-json', 'record:null', 'record:number']);
      expect(Object.fromEntries(loaded.records)).toEqual({
        'tag:a': { digest: entries[0]!.digest },
        spaced: ['x', ':y'],
        far: 'far',
        escapes: { text: 'a\u0000b"ü\n', big: 9007199254740991, float: 1500 },
      });
    } finally {
      await again.close();
    }
  });

  it('deletes many rows at once and keeps the last of two writes of one key in a batch', async () => {
    const file = join(await tempDir(), 'index.sqlite');
    const { logger } = captureLogger();
    const index = await openSqliteIndex(file, logger);
    try {
      const entries = Array.from({ length: 25_000 }, (_, i) => entry(i));
      expect(await index.putEntries(entries)).toEqual([]);
      // In LRU order, not key order, as an eviction pass hands them over.
      await index.deleteEntries(entries.slice(0, 24_000).reverse().map((e) => e.digest));
      const loaded = await index.load();
      expect(loaded.entries.map((e) => e.digest).sort()).toEqual(entries.slice(24_000).map((e) => e.digest));
      await index.deleteEntries([entries[24_500]!.digest, entries[0]!.digest]);
      expect((await index.load()).entries).toHaveLength(999);
      const twice = Array.from({ length: 3 }, (_, i) => entry(30_000 + i));
      expect(await index.putEntries([twice[2]!, twice[0]!, { ...twice[2]!, size: 1 }, twice[1]!, { ...twice[2]!, size: 2 }])).toEqual([]);
      expect((await index.readEntry(twice[2]!.digest))?.size).toBe(2);
    } finally {
      await index.close();
    }
  });
});
