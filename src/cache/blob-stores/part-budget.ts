/**
 * Room for the part buffers of every S3 upload in the process, in whole parts. A fill takes room for a
 * part when it begins gathering it and holds it until that part has been sent (or the upload ends), so
 * a fill that has room can always finish its part without waiting for anyone: only a fill at the start
 * of a part waits, and it holds no part that is still being gathered, only parts on their way out,
 * which free their room whatever other fills do. There is no cycle of fills waiting for each other.
 */
export class PartBudget {
  readonly parts: number;
  readonly partSize: number;
  private taken = 0;
  private readonly waiting: Array<(granted: boolean) => void> = [];
  private bufferedBytes = 0;
  private peakBytes = 0;

  constructor(parts: number, partSize: number) {
    if (!Number.isSafeInteger(parts) || parts < 1) throw new RangeError(`part budget: expected at least one part, got ${parts}`);
    this.parts = parts;
    this.partSize = partSize;
  }

  /**
   * Room for one part: resolves with a release function once there is room, in order of asking, or
   * with null when `signal` aborts first. The release is idempotent.
   */
  take(signal: AbortSignal): Promise<(() => void) | null> {
    if (signal.aborted) return Promise.resolve(null);
    if (this.taken < this.parts && this.waiting.length === 0) return Promise.resolve(this.grant());
    return new Promise((resolve) => {
      const wake = (granted: boolean): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(granted ? this.grant() : null);
      };
      const onAbort = (): void => {
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        wake(false);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(wake);
    });
  }

  /** Bytes now held in part buffers (what the room is taken for); for tests and status. */
  hold(bytes: number): void {
    this.bufferedBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.bufferedBytes);
  }

  letGo(bytes: number): void {
    this.bufferedBytes -= bytes;
  }

  /** Bytes held in part buffers now and at most since the last `resetPeak` (a counter for tests, not a timing). */
  get usage(): { bufferedBytes: number; peakBytes: number; partsTaken: number; waiting: number } {
    return { bufferedBytes: this.bufferedBytes, peakBytes: this.peakBytes, partsTaken: this.taken, waiting: this.waiting.length };
  }

  resetPeak(): void {
    this.peakBytes = this.bufferedBytes;
  }

  private grant(): () => void {
    this.taken += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.taken -= 1;
      this.waiting.shift()?.(true);
    };
  }
}
