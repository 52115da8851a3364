import type { BlobCache } from '../cache/blob-cache.js';
import { totalsOf, WEEK_MS, type Totals } from './request-history.js';
import { countOf, isObject, isTime } from './saved-values.js';

/** What one replica publishes of itself in the shared index, for the others' status pages. */
export interface ReplicaSummary {
  readonly name: string;
  /** Date.now() of the publication. */
  readonly at: number;
  readonly windows: { readonly hour: Totals; readonly day: Totals; readonly week: Totals };
  readonly cache: { readonly bytes: number; readonly maxSize: number; readonly entries: number };
}

const PREFIX = 'status/replica/';
/** The status page's history in the records: a lone Layover's, or under it each replica's of a shared index. */
const HISTORY_KEY = 'status/history';

export function historyKey(replica: string | null): string {
  return replica === null ? HISTORY_KEY : `${HISTORY_KEY}/${replica}`;
}
/** Published more often than this is shown: a replica missing two publications in a row is gone. */
export const REPLICA_SEEN_MS = 3 * 60_000;
// A record this old belongs to a replica that is not coming back (a pod name of a past rollout).
const FORGOTTEN_MS = WEEK_MS;
const MAX_NAME = 200;
// The page lists at most this many, whatever the index holds.
const MAX_SHOWN = 100;

/**
 * The replicas of a shared index, each under `status/replica/<name>` in the index's records. What is
 * read there was written by another process: it is checked field by field, and what does not fit is
 * left out.
 */
export class ReplicaSummaries {
  constructor(
    private readonly cache: BlobCache,
    private readonly now: () => number = Date.now,
  ) {}

  async publish(summary: ReplicaSummary): Promise<void> {
    await this.cache.setRecord(`${PREFIX}${summary.name}`, summary);
    // Only what is known to be old: a record of another shape may be a newer version's, and one
    // announced by another replica may not have reached this one's memory yet.
    // One dated a week ahead is no replica's clock either: someone wrote it to stay listed for ever.
    const forgotten = this.cache.recordKeys(PREFIX).filter((key) => {
      const at = (this.cache.getRecord<{ at?: unknown }>(key) ?? {}).at;
      return typeof at === 'number' && (at < this.now() - FORGOTTEN_MS || at > this.now() + FORGOTTEN_MS);
    });
    for (const key of forgotten) {
      await this.cache.deleteRecord(key);
      await this.cache.deleteRecord(historyKey(key.slice(PREFIX.length)));
    }
  }

  /** The replicas that published within `withinMs`, by name (a clock ahead of this one by as much still counts). */
  seen(withinMs = REPLICA_SEEN_MS): ReplicaSummary[] {
    const from = this.now() - withinMs;
    const until = this.now() + withinMs;
    return this.cache
      .recordKeys(PREFIX)
      .flatMap((key) => replicaSummaryOf(this.cache.getRecord<unknown>(key)))
      .filter((summary) => summary.at >= from && summary.at <= until)
      .sort((a, b) => a.name.localeCompare(b.name))
      .slice(0, MAX_SHOWN);
  }
}

function replicaSummaryOf(saved: unknown): ReplicaSummary[] {
  if (!isObject(saved) || typeof saved.name !== 'string' || saved.name.length > MAX_NAME || !isTime(saved.at)) return [];
  const windows = isObject(saved.windows) ? saved.windows : {};
  const cache = isObject(saved.cache) ? saved.cache : {};
  return [
    {
      name: saved.name,
      at: saved.at,
      windows: { hour: totalsOf(windows.hour), day: totalsOf(windows.day), week: totalsOf(windows.week) },
      cache: { bytes: countOf(cache.bytes), maxSize: countOf(cache.maxSize), entries: countOf(cache.entries) },
    },
  ];
}
