/** A row as a compare-and-set reads it: its text, and the version a write names to replace exactly this row. */
export interface StoredRow {
  readonly text: string;
  readonly version: string;
}

/** One row of a compare-and-set: `text` is written only where the row is still at `version` (null: no row). */
export interface SwapRow {
  readonly key: string;
  readonly version: string | null;
  readonly text: string;
}

/**
 * Compare-and-set on rows, for shared backends (Redis, Postgres): a merging write (an access time, a
 * record written back over what was merged) is read, merged and written only where no other replica
 * wrote in between. Keys are the index's own (`blob:…`, `record:…`), without the namespace.
 */
export interface RowSwap {
  /** The stored rows, in the order of `keys`; null where there is none (or none that holds text). */
  read(keys: readonly string[]): Promise<Array<StoredRow | null>>;
  /** Writes each row where its version still stands, each row atomically; answers, per row, whether it was written. */
  write(rows: readonly SwapRow[]): Promise<boolean[]>;
}
