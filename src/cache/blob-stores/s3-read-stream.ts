import { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandInput, type S3Client } from '@aws-sdk/client-s3';
import type { PendingRead } from '../blob-store.js';
import type { ByteRange } from '../blob-types.js';
import { IO_CHUNK } from '../durable-files.js';

/**
 * A GetObject (with Range) as a byte stream, in chunks of 1 MiB however small the socket's reads are
 * (every blob path moves at least that much at a time). Like a file stream it is `pending` until the
 * object's answer has come, then emits 'ready'; a missing object fails it with code ENOENT, so the cache
 * treats a lost object as it treats a lost file.
 */
export class S3ReadStream extends Readable implements PendingRead {
  private readonly client: S3Client;
  private readonly input: GetObjectCommandInput;
  private readonly start: number;
  /** Bytes still to pass on: some stores answer more than the range asked for. */
  private remaining: number;
  private readonly abort = new AbortController();
  private body: Readable | undefined;
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  private isPending = true;

  constructor(client: S3Client, input: Omit<GetObjectCommandInput, 'Range'>, range: ByteRange) {
    super({ highWaterMark: IO_CHUNK });
    this.client = client;
    this.input = { ...input, Range: `bytes=${range.start}-${range.end}` };
    this.start = range.start;
    this.remaining = range.end - range.start + 1;
  }

  get pending(): boolean {
    return this.isPending;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.client
      .send(new GetObjectCommand(this.input), { abortSignal: this.abort.signal })
      .then((answer) => {
        if (!(answer.Body instanceof Readable)) throw new Error('the object store answered without a body stream');
        // s3rver reads `bytes=0-0` as the whole object, and a store that ignores Range answers 200 with all
        // of it: bytes that start where asked are cut to the range; any others would be the wrong bytes.
        const from = answer.ContentRange ? Number(/^bytes (\d+)-/.exec(answer.ContentRange)?.[1]) : 0;
        if (from !== this.start) throw new Error(`the object store answered from byte ${answer.ContentRange ?? 0}, not ${this.start}`);
        this.attach(answer.Body);
        this.isPending = false;
        callback();
        this.emit('ready');
      })
      .catch((error: unknown) => callback(asReadError(error)));
  }

  override _read(): void {
    this.body?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.abort.abort();
    this.body?.destroy();
    callback(error);
  }

  private attach(body: Readable): void {
    this.body = body;
    body.pause();
    body.on('data', (data: Buffer) => {
      if (this.remaining <= 0) return;
      const chunk = data.length > this.remaining ? data.subarray(0, this.remaining) : data;
      this.remaining -= chunk.length;
      this.gathered.push(chunk);
      this.gatheredBytes += chunk.length;
      if (this.remaining === 0) return this.finish();
      if (this.gatheredBytes >= IO_CHUNK && !this.pushGathered()) body.pause();
    });
    body.once('end', () => {
      if (this.remaining > 0) return void this.destroy(new Error(`the object store's answer ended ${this.remaining} bytes short`));
      this.finish();
    });
    body.once('error', (error) => this.destroy(error));
  }

  private finish(): void {
    if (this.readableEnded || this.destroyed) return;
    if (this.gatheredBytes > 0) this.pushGathered();
    this.push(null);
    // Whatever more a store sends is not wanted.
    this.body?.destroy();
  }

  private pushGathered(): boolean {
    const chunk = this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return this.push(chunk);
  }
}

/** The SDK's error for a key that is not there (GetObject says NoSuchKey, HeadObject a bare 404). */
export function isNotFound(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchKey' || name === 'NotFound' || $metadata?.httpStatusCode === 404;
}

function asReadError(error: unknown): Error {
  if (isNotFound(error)) {
    return Object.assign(new Error('the blob is not in the object store', { cause: error }), { code: 'ENOENT' });
  }
  return error instanceof Error ? error : new Error(String(error));
}
