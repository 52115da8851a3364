/**
 * A fill's waits for its store to take a chunk (an S3 part on its way, room among the part buffers),
 * bounded: when one wait lasts `timeoutMs`, `gaveUp` is called and the wait ends, so a store that takes
 * nothing cannot hold a fill forever. One timer for all of a fill's waits, refreshed per chunk.
 */
export class StoreWait {
  private readonly timeoutMs: number;
  private readonly gaveUp: () => void;
  private timer: NodeJS.Timeout | undefined;
  private end: (() => void) | undefined;

  constructor(timeoutMs: number, gaveUp: () => void) {
    this.timeoutMs = timeoutMs;
    this.gaveUp = gaveUp;
  }

  /** True while a wait is under way (the fill is held by its store, not by its upstream). */
  get waiting(): boolean {
    return this.end !== undefined;
  }

  /** Resolves when `uploaded` does or the bound passed; rejects when `uploaded` does. */
  async wait(uploaded: Promise<void>): Promise<void> {
    this.timer ??= setTimeout(() => this.timedOut(), this.timeoutMs);
    this.timer.refresh();
    try {
      await new Promise<void>((resolve, reject) => {
        this.end = resolve;
        uploaded.then(() => resolve()).catch(reject);
      });
    } finally {
      this.end = undefined;
    }
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private timedOut(): void {
    const end = this.end;
    // Fired between two waits: nothing waits for the store.
    if (!end) return;
    this.gaveUp();
    end();
  }
}
