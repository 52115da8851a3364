import type { Readable } from 'node:stream';
import type { ByteRange, Fill } from './blob-types.js';

/**
 * Counts the clients following fills in progress (each reader handed out, until it closes), for
 * /metrics' fill waiters. A fill is wrapped once, so every caller of the same digest gets the same object.
 */
export class FillWaiters {
  #count = 0;
  readonly #wrapped = new WeakMap<Fill, Fill>();

  get count(): number {
    return this.#count;
  }

  counted(fill: Fill): Fill;
  counted(fill: Fill | undefined): Fill | undefined;
  counted(fill: Fill | undefined): Fill | undefined {
    if (!fill) return undefined;
    const known = this.#wrapped.get(fill);
    if (known) return known;
    const wrapper: Fill = {
      digest: fill.digest,
      meta: fill.meta,
      done: fill.done,
      get verified() {
        return fill.verified;
      },
      reader: (range?: ByteRange): Readable => {
        const stream = fill.reader(range);
        this.#count += 1;
        stream.once('close', () => (this.#count -= 1));
        return stream;
      },
    };
    this.#wrapped.set(fill, wrapper);
    return wrapper;
  }
}
