/** Where a prefetch stands, in every progress line. */
export interface PrefetchTotals {
  readonly images: number;
  readonly imagesDone: number;
  /** Blobs found so far (the total grows as manifests are read). */
  readonly blobs: number;
  readonly blobsDone: number;
  /** Blob bytes read through Layover so far (0 for blobs already cached). */
  readonly bytes: number;
}

export interface ImageFailure {
  readonly image: string;
  readonly error: string;
}

/**
 * One line of POST /admin/prefetch's NDJSON answer (and what the schedule sees). `image` is the
 * reference as it was asked for; `reference` its normalised form.
 */
export type PrefetchLine =
  | { readonly event: 'start'; readonly totals: PrefetchTotals }
  | { readonly event: 'image-started'; readonly image: string; readonly reference: string; readonly totals: PrefetchTotals }
  | { readonly event: 'manifest'; readonly image: string; readonly digest: string; readonly mediaType: string; readonly bytes: number; readonly totals: PrefetchTotals }
  | { readonly event: 'blob-started'; readonly image: string; readonly digest: string; readonly size: number; readonly totals: PrefetchTotals }
  | { readonly event: 'blob-done'; readonly image: string; readonly digest: string; readonly bytes: number; readonly cached: boolean; readonly totals: PrefetchTotals }
  /** Now and then while blobs are read: bytes move even when no blob finishes (and the connection stays busy). */
  | { readonly event: 'progress'; readonly current: { readonly image: string; readonly digest: string } | null; readonly totals: PrefetchTotals }
  | { readonly event: 'image-done'; readonly image: string; readonly reference: string; readonly manifests: number; readonly blobs: number; readonly bytes: number; readonly totals: PrefetchTotals }
  | { readonly event: 'image-failed'; readonly image: string; readonly error: string; readonly totals: PrefetchTotals }
  | { readonly event: 'summary'; readonly ok: readonly string[]; readonly failed: readonly ImageFailure[]; readonly stopped: string | null; readonly totals: PrefetchTotals };

export type PrefetchSummary = Extract<PrefetchLine, { event: 'summary' }>;
