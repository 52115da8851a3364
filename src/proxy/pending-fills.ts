import type { Fill } from '../cache/blob-cache.js';
import type { Digest } from '../registry/digest.js';

/**
 * Blob misses whose upstream request is in flight but whose fill has not
 * started yet (no response headers so far). Without this, N clients arriving
 * together would each send a GET upstream before the first fill exists.
 */
export class PendingFills {
  readonly #pending = new Map<Digest, Promise<Fill | undefined>>();

  /** The fill that the request in flight for `digest` will start, or undefined if it started none. */
  get(digest: Digest): Promise<Fill | undefined> | undefined {
    return this.#pending.get(digest);
  }

  /** Marks `digest` as being fetched; call the returned function exactly once with the fill, or undefined. */
  begin(digest: Digest): (fill: Fill | undefined) => void {
    let settle!: (fill: Fill | undefined) => void;
    this.#pending.set(digest, new Promise((resolve) => (settle = resolve)));
    let settled = false;
    return (fill) => {
      if (settled) return;
      settled = true;
      this.#pending.delete(digest);
      settle(fill);
    };
  }
}
