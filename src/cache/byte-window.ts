const EMPTY = Buffer.alloc(0);

/**
 * A stretch of a blob held in memory as the chunks it arrived in (nothing is copied): the bytes a
 * fill's readers get once the temp file can no longer serve them. Offsets are positions in the blob.
 */
export class ByteWindow {
  private chunks: Buffer[] = [];
  /** offsets[i] is where chunks[i] starts in the blob. */
  private offsets: number[] = [];
  /** The first chunk still held; dropped chunks are compacted away now and then, not on every trim. */
  private head = 0;
  private first: number;
  private last: number;

  constructor(start: number) {
    this.first = start;
    this.last = start;
  }

  /** The first byte held. */
  get start(): number {
    return this.first;
  }

  /** Exclusive: the byte after the newest one. */
  get end(): number {
    return this.last;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.offsets.push(this.last);
    this.last += chunk.length;
  }

  /** Up to `length` bytes from `position` (start <= position < end), out of one chunk and sharing its memory. */
  slice(position: number, length: number): Buffer {
    if (position < this.first || position >= this.last) throw new RangeError(`byte ${position} is not held (${this.first}-${this.last})`);
    // The last chunk that starts at or before `position`.
    let low = this.head;
    let high = this.chunks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.offsets[middle]! <= position) low = middle;
      else high = middle - 1;
    }
    const from = position - this.offsets[low]!;
    const chunk = this.chunks[low]!;
    return chunk.subarray(from, Math.min(chunk.length, from + length));
  }

  /** Copies the bytes from `position` on (start <= position < end) into `target`, across chunks; returns how many. */
  copyTo(position: number, target: Buffer): number {
    let copied = 0;
    while (copied < target.length && position + copied < this.last) {
      const piece = this.slice(position + copied, target.length - copied);
      copied += piece.copy(target, copied);
    }
    return copied;
  }

  /** Lets go of every chunk that ends at or before `position`. */
  trimTo(position: number): void {
    while (this.head < this.chunks.length && this.offsets[this.head]! + this.chunks[this.head]!.length <= position) {
      this.first += this.chunks[this.head]!.length;
      // The slot stays until the next compaction; its memory goes now.
      this.chunks[this.head] = EMPTY;
      this.head += 1;
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.offsets = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.offsets = this.offsets.slice(this.head);
      this.head = 0;
    }
  }
}
