import { ByteWindow } from './byte-window.js';
import { FillError } from './fill-error.js';

/** What the relay needs to know of a reader. */
export interface RelayReader {
  /** The next byte the reader will ask for; Infinity once it wants none. */
  readonly need: number;
  destroy(error: Error): void;
}

/**
 * What a fill becomes when its temp file fails: every byte from the point of failure on, held in memory
 * as received, for the readers the fill already had. Bytes go once every reader has passed them. The
 * memory is bounded by holding the source back while the slowest reader trails the newest byte by more
 * than `limit` (counting from the point of failure: what lies before it is on disk); a reader that takes
 * nothing for a whole stall timeout meanwhile is cut off.
 */
export class FillRelay {
  /** Where the temp file failed. */
  private readonly origin: number;
  private readonly window: ByteWindow;
  private readonly readers: ReadonlySet<RelayReader>;
  private readonly limit: number;
  private wakeSource: (() => void) | undefined;

  constructor(start: number, readers: ReadonlySet<RelayReader>, limit: number) {
    this.origin = start;
    this.window = new ByteWindow(start);
    this.readers = readers;
    this.limit = limit;
  }

  /** The first byte held; readers behind it read the part of the temp file written before the failure. */
  get start(): number {
    return this.window.start;
  }

  get end(): number {
    return this.window.end;
  }

  /** True while the source waits for a slow reader. */
  get holding(): boolean {
    return this.wakeSource !== undefined;
  }

  append(chunk: Buffer): void {
    this.window.append(chunk);
  }

  slice(position: number, length: number): Buffer {
    return this.window.slice(position, length);
  }

  copyTo(position: number, target: Buffer): number {
    return this.window.copyTo(position, target);
  }

  /** Lets go of what every reader has passed and, if there is room again, of the source; returns the slowest reader's need. */
  advanced(): number {
    let slowest = Number.POSITIVE_INFINITY;
    for (const reader of this.readers) slowest = Math.min(slowest, reader.need);
    this.window.trimTo(Math.min(slowest, this.window.end));
    if (this.wakeSource && this.lag(slowest) <= this.limit) this.letGo();
    return slowest;
  }

  /** Resolves once the slowest reader is within `limit` of the newest byte (or `letGo()` is called). */
  async room(): Promise<void> {
    if (this.lag(this.advanced()) <= this.limit) return;
    await new Promise<void>((resolve) => (this.wakeSource = resolve));
  }

  /** Lets a held source go on; the fill calls it when it ends, room or not. */
  letGo(): void {
    const wake = this.wakeSource;
    this.wakeSource = undefined;
    wake?.();
  }

  /** Cuts off every reader that trails by more than `limit`; returns how many. */
  cutOffLaggards(): number {
    const laggards = [...this.readers].filter((reader) => this.lag(reader.need) > this.limit);
    const error = new FillError('stall', `the reader fell more than ${this.limit} bytes behind a dropped cache fill`);
    for (const reader of laggards) reader.destroy(error);
    this.advanced();
    return laggards.length;
  }

  /** The memory held for a reader at `need`: one still in the part written to disk reads that from the file. */
  private lag(need: number): number {
    return this.window.end - Math.max(need, this.origin);
  }
}
