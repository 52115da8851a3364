import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prefetchedPages } from '../../../src/cache/indexes/prefetched-pages.js';
import { SqlitePages } from '../../../src/cache/indexes/sqlite-pages.js';

const RANGE = { table: 'keyv', firstKey: 'layover:', pastLastKey: 'layover;', busyTimeoutMs: 1_000 };

describe('SqlitePages', () => {
  let dir: string;
  let file: string;
  /** The rows of the namespace as the table holds them, in rowid order. */
  let expected: Array<readonly [string, unknown]>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'layover-sqlite-pages-'));
    file = join(dir, 'index.sqlite');
    const db = new DatabaseSync(file);
    db.exec('PRAGMA journal_mode=WAL');
    db.exec('CREATE TABLE keyv(key VARCHAR(255) PRIMARY KEY, value TEXT)');
    const insert = db.prepare('INSERT INTO keyv (key, value) VALUES (?, ?)');
    expected = [];
    for (let i = 0; i < 23; i += 1) {
      // Rows of another namespace in between: the range leaves them out.
      if (i % 5 === 0) insert.run(`other:${i}`, JSON.stringify({ value: i }));
      const key = `layover:blob:${String(i).padStart(3, '0')}`;
      const value = i === 7 ? 'not json' : JSON.stringify({ value: { size: i, source: 'x'.repeat(40) }, expires: null });
      insert.run(key, value);
      expected.push([key, i === 7 ? 'not json' : { value: { size: i, source: 'x'.repeat(40) }, expires: null }]);
    }
    db.close();
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const readAll = async (pages: SqlitePages): Promise<{ rows: Array<readonly [string, unknown]>; pageSizes: number[] }> => {
    const rows: Array<readonly [string, unknown]> = [];
    const pageSizes: number[] = [];
    for await (const page of prefetchedPages((after, limit) => pages.page(after, limit), 5)) {
      pageSizes.push(page.length);
      rows.push(...page);
    }
    return { rows, pageSizes };
  };

  it('reads every row of the key range in rowid order, a page at a time, a JSON object as an object', async () => {
    const pages = await SqlitePages.open(file, RANGE);
    try {
      const { rows, pageSizes } = await readAll(pages);
      expect(rows).toEqual(expected);
      expect(pageSizes).toEqual([5, 5, 5, 5, 3]);
    } finally {
      await pages.close();
    }
  });

  it('reads a page too long for one text row by row, the same rows', async () => {
    // Each page's text is about 5 x 90 bytes: over this limit, while every single value fits.
    const pages = await SqlitePages.open(file, { ...RANGE, textLimitBytes: 200 });
    try {
      const { rows, pageSizes } = await readAll(pages);
      expect(pageSizes).toEqual([5, 5, 5, 5, 3]);
      // Row by row, values come back as SQLite stores them: text, which decodeValue parses.
      expect(rows.every(([, value]) => typeof value === 'string')).toBe(true);
      expect(rows.map(([key, value]) => [key, value === 'not json' ? value : JSON.parse(value as string)])).toEqual(expected);
    } finally {
      await pages.close();
    }
  });

  it('closes while a page asked for ahead is still being read', async () => {
    const pages = await SqlitePages.open(file, RANGE);
    const ahead = pages.page(5, 5);
    await pages.close();
    expect((await ahead).count).toBe(5);
  });
});
