import sqlite3 from 'sqlite3';
import type { PageAnswer } from './prefetched-pages.js';

/**
 * Pages in rowid order, the order of the table's own b-tree: in key order (the primary key's index)
 * each row cost a look-up in the table, 100,000 blobs took twice as long. `NOT INDEXED` keeps SQLite
 * from choosing that index for the key range, which only filters.
 */
const pageRows = (table: string): string => `SELECT rowid, key, value FROM ${table} NOT INDEXED WHERE rowid > ? AND key > ? AND key < ? ORDER BY rowid LIMIT ?`;
/**
 * One page is one JSON text built by SQLite: the sqlite3 module made a JavaScript object per row on the
 * main thread, which cost more than parsing one string per page. A value that is a JSON object goes into
 * the page as that object (parsed by SQLite on the module's thread, not by the main thread once more per
 * row); any other text as text, and a value that is not text as null (json_array refuses blobs): the load
 * reports both as unreadable, as it did a row. Nested CASEs: SQLite does not promise to stop at the first
 * false term of an AND, and json_type fails on malformed text.
 */
const PAGE_VALUE = `CASE WHEN typeof(value) = 'text' THEN CASE WHEN json_valid(value) THEN CASE WHEN json_type(value) = 'object' THEN json(value) ELSE value END ELSE value END END`;
const pageText = (table: string): string =>
  `SELECT json_group_array(json_array(key, ${PAGE_VALUE})) AS page, max(rowid) AS last, count(*) AS count FROM (${pageRows(table)})`;

type Row = readonly [string, unknown];

export interface SqlitePagesOptions {
  /** The keyv table. */
  table: string;
  /** Rows whose key sorts after this one and before `pastLastKey` (a namespace's range). */
  firstKey: string;
  pastLastKey: string;
  /** How long a statement waits for another connection's lock. */
  busyTimeoutMs: number;
  /** The longest text SQLite builds on this connection (its 1 GB by default); a page longer than that is read row by row. */
  textLimitBytes?: number;
}

/**
 * The rows of a key range of a keyv table, read a page at a time on a connection of their own, with the
 * page query prepared once. sqlite3 runs a query made with `Database.all` as three jobs on its thread
 * (prepare, step, finalize), each started from the main thread: while the main thread parsed and sorted
 * one page, the next one waited there after its prepare, so asking for it early gained nothing. A
 * prepared statement's query is one job, which runs while the main thread works: 100,000 rows loaded in
 * 0.86-0.97 s instead of 1.00-1.16 s (pages of 5,000 rows, six loads each, taking turns with the build
 * before), the same CPU.
 */
export class SqlitePages {
  readonly #database: sqlite3.Database;
  readonly #table: string;
  readonly #keys: readonly [first: string, pastLast: string];
  /** The page-as-text statement; null when SQLite could not prepare it (then every page is read row by row). */
  #statement: sqlite3.Statement | null;

  private constructor(database: sqlite3.Database, table: string, keys: readonly [string, string], statement: sqlite3.Statement | null) {
    this.#database = database;
    this.#table = table;
    this.#keys = keys;
    this.#statement = statement;
  }

  /** Opens `file` for reading the rows of `options.table` whose key is after `firstKey` and before `pastLastKey`. */
  static async open(file: string, options: SqlitePagesOptions): Promise<SqlitePages> {
    // Without OPEN_CREATE: the index's own connection made the file; this one never makes another.
    const database = await new Promise<sqlite3.Database>((resolve, reject) => {
      const opened: sqlite3.Database = new sqlite3.Database(file, sqlite3.OPEN_READWRITE, (error) => (error ? reject(error) : resolve(opened)));
    });
    database.configure('busyTimeout', options.busyTimeoutMs);
    if (options.textLimitBytes !== undefined) database.configure('limit', sqlite3.LIMIT_LENGTH, options.textLimitBytes);
    const statement = await new Promise<sqlite3.Statement | null>((resolve) => {
      const prepared: sqlite3.Statement = database.prepare(pageText(options.table), (error) => resolve(error ? null : prepared));
    });
    return new SqlitePages(database, options.table, [options.firstKey, options.pastLastKey], statement);
  }

  /**
   * Up to `limit` rows after rowid `after`, in rowid order, and the last rowid read, known once SQLite has
   * answered and before the rows are parsed. A page too large for one text (SQLite's string limit, 1 GB)
   * is read row by row.
   */
  async page(after: number, limit: number): Promise<PageAnswer<Row>> {
    const [first, pastLast] = this.#keys;
    const text = await this.#pageText(after, limit);
    if (text) {
      const { page, count } = text;
      return { count, last: text.last ?? after, rows: () => (count === 0 ? [] : (JSON.parse(page) as Row[])) };
    }
    const rows = await new Promise<Array<{ rowid: number; key: string; value: unknown }>>((resolve, reject) => {
      this.#database.all<{ rowid: number; key: string; value: unknown }>(pageRows(this.#table), [after, first, pastLast, limit], (error, found) => (error ? reject(error) : resolve(found)));
    });
    return { count: rows.length, last: rows.at(-1)?.rowid ?? after, rows: () => rows.map((row) => [row.key, row.value] as const) };
  }

  async close(): Promise<void> {
    const statement = this.#statement;
    this.#statement = null;
    if (statement) await new Promise<void>((resolve) => statement.finalize(() => resolve()));
    await new Promise<void>((resolve, reject) => this.#database.close((error) => (error ? reject(error) : resolve())));
  }

  /** The page as one text; undefined when SQLite could not build it (not a reason to fail the load: the same rows, one object each). */
  async #pageText(after: number, limit: number): Promise<{ page: string; last: number | null; count: number } | undefined> {
    const statement = this.#statement;
    if (!statement) return undefined;
    const [first, pastLast] = this.#keys;
    return new Promise((resolve) => {
      statement.all<{ page: string; last: number | null; count: number }>([after, first, pastLast, limit], (error, rows) => resolve(error ? undefined : rows[0]));
    });
  }
}
