import type { CacheIndex } from './cache-index.js';
import { openSqliteIndex } from './indexes/sqlite.js';

export { IndexWriteError, type IndexContents } from './cache-index.js';

/** The SQLite index under its earlier name, for the callers that open it directly. */
export type IndexStore = CacheIndex;
export const IndexStore = { open: openSqliteIndex };
