import { stringify } from 'yaml';

// What `layover cache` prints: on a terminal, lines for a person; otherwise what scripts have always read
// (YAML, and tab-separated rows for `ls`), the same whether it came from the admin API or the files.

export interface BlobRow {
  digest: string;
  size: number;
  kind: string;
  /** ISO 8601. */
  lastAccess: string;
  source: string;
  pinned?: boolean;
}

export interface KeptRow {
  digest: string;
  size: number;
  reason: string;
  sharedWith?: readonly string[];
}

export interface PurgeAnswer {
  scope: string;
  removed: number;
  freedBytes: number;
  kept: readonly KeptRow[];
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => `${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')}\n`).join('');
}

export function statsText(stats: Record<string, unknown> & { bytes: number; maxSize: number }, human: boolean): string {
  const shown = { ...stats, used: mib(stats.bytes), max: mib(stats.maxSize) };
  if (!human) return stringify(shown);
  const lines = [
    `entries        ${String(stats.entries)}`,
    `used           ${mib(stats.bytes)} of ${mib(stats.maxSize)}`,
    ...(typeof stats.pinnedBytes === 'number' ? [`pinned         ${mib(stats.pinnedBytes)} in ${String(stats.pinnedEntries)} blobs (${String(stats.pins)} pins)`] : []),
    `fills          ${String(stats.activeFills)} in progress, ${String(stats.waiters ?? 0)} clients following`,
    `evicted        ${String(stats.evictions ?? 0)} blobs, ${mib(Number(stats.evictedBytes ?? 0))}`,
  ];
  return `${lines.join('\n')}\n`;
}

export function blobsText(blobs: readonly BlobRow[], human: boolean): string {
  if (!human) return blobs.map((e) => `${[e.digest, String(e.size), e.kind, e.lastAccess, e.source].join('\t')}\n`).join('');
  if (blobs.length === 0) return 'the cache is empty\n';
  return table([['DIGEST', 'SIZE', 'KIND', 'LAST USED', 'SOURCE', 'PINNED'], ...blobs.map((e) => [e.digest, mib(e.size), e.kind, e.lastAccess.replace('T', ' ').slice(0, 19), e.source, e.pinned ? 'yes' : ''])]);
}

export function pruneText(result: { removed: number; freedBytes: number }, human: boolean): string {
  return human ? `removed ${result.removed} blobs, freed ${mib(result.freedBytes)}\n` : stringify({ ...result, freed: mib(result.freedBytes) });
}

export function verifyText(result: { checked: number; removed: readonly string[] }, human: boolean): string {
  if (!human) return stringify(result);
  return `checked ${result.checked} blobs; ${result.removed.length === 0 ? 'all match their digests' : `removed ${result.removed.length} that did not:\n${result.removed.map((d) => `  ${d}\n`).join('')}`}\n`;
}

export function purgeText(results: readonly PurgeAnswer[], human: boolean): string {
  if (!human) return stringify(results.length === 1 ? results[0] : results);
  return results
    .map((r) => {
      const kept = r.kept.map((k) => `  kept ${k.digest} (${k.reason}${k.sharedWith ? ` with ${k.sharedWith.join(', ')}` : ''})\n`).join('');
      const hint = r.kept.some((k) => k.reason === 'shared') ? '  (--force removes blobs shared with other images too)\n' : '';
      return `${r.scope}: removed ${r.removed} blobs, freed ${mib(r.freedBytes)}\n${kept}${hint}`;
    })
    .join('');
}

export function pinText(results: ReadonlyArray<Record<string, unknown> & { scope: string }>, verb: 'pin' | 'unpin', human: boolean): string {
  if (!human) return stringify(results.length === 1 ? results[0] : results);
  return results
    .map((r) => {
      if (verb === 'unpin') return `${r.scope}: ${r.wasPinned ? 'unpinned' : 'was not pinned itself (a pin of a wider scope still covers it, if any)'}\n`;
      return `${r.scope}: pinned${r.added ? '' : ' already'}; ${String(r.cachedBlobs ?? 0)} blobs (${mib(Number(r.cachedBytes ?? 0))}) cached now, more as they arrive\n`;
    })
    .join('');
}
