import { parseDigest } from '../../registry/digest.js';
import type { BlobEntry, BlobKind } from '../blob-types.js';
import type { IndexContents } from '../cache-index.js';

/** Keys inside an index's namespace: `blob:<digest>` for blob rows, `record:<key>` for caller records. */
export const BLOB_PREFIX = 'blob:';
export const RECORD_PREFIX = 'record:';
/** Rows per page when loading: keyv's default of 10 took 17.8 s for 30k sqlite rows, 1000 took 0.41 s. */
export const PAGE_SIZE = 1000;
/** A row whose value could not be decoded: reported in `invalid`, like a key nobody knows. */
export const UNREADABLE: unique symbol = Symbol('unreadable');

type EntryRow = Omit<BlobEntry, 'digest'>;

export function toRow(entry: BlobEntry): EntryRow {
  const { size, mediaType, kind, created, lastAccess, source } = entry;
  return { size, mediaType, kind, created, lastAccess, source };
}

/** One page of rows: keys without the namespace, values as keyv stored them (decodeValue turns them back). */
export type RowPage = ReadonlyArray<readonly [string, unknown]>;

/**
 * Sorts every row of a namespace into entries, records and keys nobody can read (from another version,
 * or hostile). Pages, not rows, are awaited: 100,000 rows cost 100,000 turns of the event loop otherwise.
 */
export async function collectRows(pages: AsyncIterable<RowPage>): Promise<IndexContents> {
  const contents: IndexContents = { entries: [], records: new Map(), invalid: [] };
  const pool = new StringPool();
  for await (const page of pages) {
    for (const [key, raw] of page) {
      const value = decodeValue(raw, pool);
      if (value === UNREADABLE) contents.invalid.push(key);
      else if (key.startsWith(RECORD_PREFIX)) {
        contents.records.set(ownCopy(key, RECORD_PREFIX.length), value);
      } else {
        const entry = key.startsWith(BLOB_PREFIX) ? toEntry(ownCopy(key, BLOB_PREFIX.length), value) : null;
        if (entry) contents.entries.push(entry);
        else contents.invalid.push(key);
      }
    }
  }
  return contents;
}

/**
 * `key` from `start` on, as a string of its own. A slice of 13 characters or more shares the characters
 * of the row's whole key (V8's sliced strings), which then lives as long as the entry or record does:
 * 9 MB at 100,000 blobs. Joining two parts is what makes V8 copy the characters.
 */
function ownCopy(key: string, start: number): string {
  return [key.slice(start, start + 1), key.slice(start + 1)].join('');
}

/** A blob row (its key without `blob:`), checked; null when it is not one. */
export function toEntry(key: string, value: unknown): BlobEntry | null {
  const digest = parseDigest(key);
  if (!digest || typeof value !== 'object' || value === null) return null;
  const row = value as Partial<Record<keyof EntryRow, unknown>>;
  const kind = row.kind;
  if (
    !(Number.isSafeInteger(row.size) && (row.size as number) >= 0) ||
    (kind !== 'blob' && kind !== 'manifest') ||
    typeof row.created !== 'number' ||
    typeof row.lastAccess !== 'number' ||
    typeof row.source !== 'string' ||
    (row.mediaType !== null && typeof row.mediaType !== 'string')
  ) {
    return null;
  }
  return {
    digest,
    size: row.size as number,
    mediaType: row.mediaType,
    kind: kind satisfies BlobKind,
    created: row.created,
    lastAccess: row.lastAccess,
    source: row.source,
  };
}

/**
 * A stored value as keyv wrote it (`{"value":…,"expires":…}` through its default serializer); anything else
 * (another program's key, garbage) is UNREADABLE. The same result as keyv's `deserializeData` without its
 * JSON.parse reviver, which cost 16 µs a row at start: strings that begin with `:` are unescaped
 * (`::x` is `:x`, `:base64:…` a Buffer) by one walk over the parsed value instead. An object is that
 * text already parsed (the SQLite index's pages carry a row's object, not its text).
 */
export function decodeValue(raw: unknown, pool?: StringPool): unknown {
  let data: unknown = raw;
  if (typeof raw === 'string') {
    try {
      data = JSON.parse(raw);
    } catch {
      return UNREADABLE;
    }
  }
  if (typeof data !== 'object' || data === null || !('value' in data)) return UNREADABLE;
  return unescapeStrings((data as { value: unknown }).value, pool);
}

function unescapeStrings(value: unknown, pool: StringPool | undefined): unknown {
  if (typeof value === 'string') {
    if (!value.startsWith(':')) return pool ? pool.kept(value) : value;
    return value.startsWith(':base64:') ? Buffer.from(value.slice(8), 'base64') : value.slice(1);
  }
  if (typeof value !== 'object' || value === null) return value;
  const holder = value as Record<string, unknown>;
  for (const key of Object.keys(holder)) {
    const before = holder[key];
    const after = unescapeStrings(before, pool);
    // A string is always written back: the pool's copy is equal to it (!== cannot tell them apart).
    if (after !== before || typeof after === 'string') holder[key] = after;
  }
  return value;
}

/** Longer strings are not pooled: hashing them costs more than a copy of them is likely to. */
const POOLED_LENGTH = 256;

/**
 * One copy of each string value a load meets again: a blob's source repository is in the row of each
 * of its layers and in their access records, its media type in thousands of rows, and each parsed
 * row holds a copy of its own. At 100,000 blobs the copies were 14 MB of a 88 MB heap. Lives for one
 * load only.
 */
export class StringPool {
  readonly #strings = new Map<string, string>();

  /** The pool's copy of `value`, which becomes it if there is none. */
  kept(value: string): string {
    if (value.length > POOLED_LENGTH) return value;
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    this.#strings.set(value, value);
    return value;
  }
}
