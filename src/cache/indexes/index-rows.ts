import type Keyv from 'keyv';
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

/** Sorts every row of a namespace into entries, records and keys nobody can read (from another version, or hostile). */
export async function collectRows(rows: AsyncIterable<[string, unknown]>): Promise<IndexContents> {
  const contents: IndexContents = { entries: [], records: new Map(), invalid: [] };
  for await (const [key, value] of rows) {
    if (value === UNREADABLE) contents.invalid.push(key);
    else if (key.startsWith(RECORD_PREFIX)) {
      contents.records.set(key.slice(RECORD_PREFIX.length), value);
    } else {
      const entry = key.startsWith(BLOB_PREFIX) ? toEntry(key.slice(BLOB_PREFIX.length), value) : null;
      if (entry) contents.entries.push(entry);
      else contents.invalid.push(key);
    }
  }
  return contents;
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

/** A stored value as keyv wrote it; anything else (another program's key, garbage) is UNREADABLE. */
export async function decode(keyv: Keyv<unknown>, raw: unknown): Promise<unknown> {
  try {
    const data = (await keyv.deserializeData(raw as string)) as { value?: unknown } | undefined;
    return data && typeof data === 'object' && 'value' in data ? data.value : UNREADABLE;
  } catch {
    return UNREADABLE;
  }
}
