/** A page of rows as the backend answered it: `rows` parses them (on the main thread), `last` says where the next page starts. */
export interface PageAnswer<Row> {
  /** Rows in the page; fewer than asked for means it was the last. */
  readonly count: number;
  /** The position after which the next page starts. */
  readonly last: number;
  rows(): Row[];
}

/**
 * Every page of a table read `limit` rows at a time, the next one asked for as soon as one has come
 * back, before it is parsed and handed on: the backend (SQLite on its own thread) builds the next page
 * while the main thread parses and sorts this one, where it waited for each page in turn. At most one
 * page is asked for ahead. One that fails while nobody reads any more (the reader stopped early) is
 * dropped; one that fails while read rejects the read.
 */
export async function* prefetchedPages<Row>(fetch: (after: number, limit: number) => Promise<PageAnswer<Row>>, limit: number): AsyncGenerator<Row[]> {
  let next = fetch(0, limit);
  for (;;) {
    const page = await next;
    const more = page.count >= limit;
    if (more) {
      next = fetch(page.last, limit);
      // Handled here too: a reader that stops before this page is read never awaits it.
      void next.catch(() => undefined);
    }
    yield page.rows();
    if (!more) return;
  }
}
