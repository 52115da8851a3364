/** One waiting check: how to give it its turn or refuse it, and its wait's own bound. */
interface Waiter {
  start(): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

/**
 * A few slots (directory connections), taken in turns by source (signInSource): past `slots`, checks
 * wait, each source's behind every other source's first; past `maxWaiting`, the source with the most
 * waiting gives up its newest for a source with fewer (as BcryptChecks does), else the newcomer is
 * refused at once. A client sending checks without pause holds at most the queue, never every turn.
 */
export class FairTurns {
  readonly #slots: number;
  readonly #maxWaiting: number;
  readonly #busy: () => Error;
  #open = 0;
  /** Waiting checks by source, in turn order: the source served last goes to the back. */
  readonly #waiting = new Map<string, Waiter[]>();
  #waitingCount = 0;

  /** `busy`: the error of a check refused at once, or one that waited its whole bound. */
  constructor(slots: number, maxWaiting: number, busy: () => Error) {
    this.#slots = slots;
    this.#maxWaiting = maxWaiting;
    this.#busy = busy;
  }

  /** Runs `work` in a slot once `source` has its turn; rejects with `busy()` when refused or not let in within `waitMs`. */
  async run<T>(source: string, waitMs: number, work: () => Promise<T>): Promise<T> {
    await this.#turn(source, waitMs);
    try {
      return await work();
    } finally {
      this.#next();
    }
  }

  #turn(source: string, waitMs: number): Promise<void> {
    if (this.#open < this.#slots) {
      this.#open += 1;
      return Promise.resolve();
    }
    const queue = this.#waiting.get(source);
    if (this.#waitingCount >= this.#maxWaiting && !this.#makeRoomFor(queue?.length ?? 0)) return Promise.reject(this.#busy());
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        start: (): void => {
          clearTimeout(waiter.timer);
          resolve();
        },
        reject: (error: Error): void => {
          clearTimeout(waiter.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          this.#remove(source, waiter);
          reject(this.#busy());
        }, waitMs),
      };
      if (queue) queue.push(waiter);
      else this.#waiting.set(source, [waiter]);
      this.#waitingCount += 1;
    });
  }

  /** A slot is free: the next source in turn takes it, or it stays free. */
  #next(): void {
    const turn = this.#waiting.entries().next();
    if (turn.done) {
      this.#open -= 1;
      return;
    }
    const [source, queue] = turn.value;
    const waiter = queue.shift()!;
    this.#waitingCount -= 1;
    // Round robin: this source's next check waits behind every other source's first.
    this.#waiting.delete(source);
    if (queue.length > 0) this.#waiting.set(source, queue);
    waiter.start();
  }

  /** The queue is full: the source with the most waiting gives up its newest when it has more than one beyond `mine`. */
  #makeRoomFor(mine: number): boolean {
    let largest: Waiter[] | undefined;
    for (const queue of this.#waiting.values()) if (!largest || queue.length > largest.length) largest = queue;
    if (!largest || largest.length <= mine + 1) return false;
    this.#waitingCount -= 1;
    largest.pop()!.reject(this.#busy());
    return true;
  }

  #remove(source: string, waiter: Waiter): void {
    const queue = this.#waiting.get(source);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!queue || at < 0) return;
    queue.splice(at, 1);
    this.#waitingCount -= 1;
    if (queue.length === 0) this.#waiting.delete(source);
  }
}
