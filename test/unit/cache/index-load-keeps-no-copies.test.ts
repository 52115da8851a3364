/**
 * What a load of the cache index leaves on the heap per row. Each parsed row carries its own copy of
 * strings that repeat across rows (a blob's source repository, its media type, the repositories in the
 * access records), and a key cut out of the row's namespaced key shares that whole key's characters:
 * at 100,000 blobs the copies and the keys' leftovers were 23 MB of an 88 MB heap. Rows are parsed
 * from JSON text and their keys sliced as the SQLite index's pages are, then measured after a full
 * collection, with the result still held.
 */
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { collectRows, type RowPage } from '../../../src/cache/indexes/index-rows.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROWS = 40_000;
const PAGE = 5_000;
const NAMESPACE = 'layover:';
const SOURCE = 'registry.example.test/team/service-with-a-long-name';
const MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

const digestOf = (i: number): string => `sha256:${createHash('sha256').update(`row ${i}`).digest('hex')}`;

/** Pages as the SQLite index yields them: parsed from one JSON text each, keys sliced past the namespace. */
async function* pages(): AsyncIterable<RowPage> {
  for (let start = 0; start < ROWS; start += PAGE) {
    const rows: unknown[] = [];
    for (let i = start; i < start + PAGE; i++) {
      const value = { size: 1000 + i, mediaType: MEDIA_TYPE, kind: 'blob', created: 1.7e12 + i, lastAccess: 1.7e12 + i, source: SOURCE };
      rows.push([`${NAMESPACE}blob:${digestOf(i)}`, { value, expires: null }]);
      rows.push([`${NAMESPACE}record:access:member:${digestOf(i)}`, { value: [SOURCE], expires: null }]);
    }
    const parsed = JSON.parse(JSON.stringify(rows)) as Array<[string, unknown]>;
    yield parsed.map(([key, value]) => [key.slice(NAMESPACE.length), value] as const);
  }
}

describe('loading the cache index', () => {
  it('keeps one copy of a string that repeats across rows, and keys that hold no more than themselves', async () => {
    gc();
    const before = process.memoryUsage().heapUsed;
    const contents = await collectRows(pages());
    gc();
    const perRow = (process.memoryUsage().heapUsed - before) / ROWS;

    expect(contents.entries).toHaveLength(ROWS);
    expect(contents.records.size).toBe(ROWS);
    expect(contents.invalid).toEqual([]);
    const last = contents.entries[ROWS - 1]!;
    expect(last).toEqual({ digest: digestOf(ROWS - 1), size: 1000 + ROWS - 1, mediaType: MEDIA_TYPE, kind: 'blob', created: 1.7e12 + ROWS - 1, lastAccess: 1.7e12 + ROWS - 1, source: SOURCE });
    expect(contents.records.get(`access:member:${digestOf(ROWS - 1)}`)).toEqual([SOURCE]);
    // A blob row and its access record: the entry with its digest, the record's array, key and map
    // slot, 419 bytes here. Each row's own copies of the source and media type made it 628, keys
    // sharing the characters of the whole row keys 516, both 724.
    expect(perRow).toBeLessThan(470);
  });
});
