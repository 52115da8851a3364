import { rm } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BlobUpload } from '../blob-store.js';
import { BufferPool } from '../buffer-pool.js';
import { PartBudget } from './part-budget.js';

/** Parts of 8 MiB: above S3's 5 MiB minimum, and 10,000 of them hold 80 GiB. */
export const PART_SIZE = 8 * 1024 * 1024;

/**
 * The part buffers of all uploads in the process: 8 parts, 64 MiB. Without a bound every fill holds up
 * to two parts (100 concurrent fills: 1.6 GiB); with it, the store's memory is that of about ten plain
 * streaming downloads, and 8 parts on their way at once still keep a bucket's bandwidth busy. Fills
 * beyond it wait at the start of a part, and that wait holds back their upstream.
 */
export const PART_BUFFERS = new PartBudget(8, PART_SIZE);

/**
 * A part is gathered by copying each chunk into a buffer of its own, reused: holding the upstream's
 * 16 KiB chunks until their part was out kept them past two young-generation collections, and freeing
 * thousands of them from the old generation costs full collections. Two spare parts are kept.
 */
const PART_POOL = new BufferPool(PART_SIZE, 2);

/** Where one upload goes, with the object's metadata (what reconcile needs to adopt it without its row). */
export interface S3UploadTarget {
  client: S3Client;
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  spoolPath: string;
}

/**
 * One fill's bytes on their way into a bucket, as they arrive. Blobs smaller than a part are sent with
 * one PutObject at commit; larger ones become a multipart upload whose parts go out while the fill goes
 * on, at most one at a time (so a fill holds at most two parts in memory: the one being sent and the one
 * being gathered), and which is completed only in `commit`, after the digest matched: S3 shows an object
 * only once PutObject or CompleteMultipartUpload has returned, so no partial blob is ever readable.
 * Every part being gathered or sent holds room in PART_BUFFERS; `append` waits for room at the start
 * of a part. A failure of the store is kept for `commit` and never fails `append`: the fill serves its
 * readers anyway.
 */
export class S3Upload implements BlobUpload {
  private readonly target: S3UploadTarget;
  /** The part being gathered, from PART_POOL; taken at its first byte. */
  private gathered: Buffer | undefined;
  private gatheredBytes = 0;
  /** Room in PART_BUFFERS for the part being gathered; taken at its first byte. */
  private gatherRoom: (() => void) | undefined;
  /** Ends a wait for room when the upload is aborted. */
  private readonly aborted = new AbortController();
  private appended = 0;
  private uploadId: Promise<string> | undefined;
  private readonly parts: CompletedPart[] = [];
  private partsSent = 0;
  private sending: Promise<void> | undefined;
  private failure: unknown;
  private state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';

  constructor(target: S3UploadTarget) {
    this.target = target;
  }

  async append(chunk: Buffer): Promise<void> {
    // A chunk that crosses a part's end is split, so that a part never holds more than its room.
    for (let offset = 0; offset < chunk.length; ) {
      if (this.state !== 'open' || this.failure !== undefined) return;
      if (!this.gatherRoom) {
        // Waiting here holds no part being gathered: only parts on their way out, which free their room.
        const room = await PART_BUFFERS.take(this.aborted.signal);
        if (!room) return;
        if (this.state !== 'open') return room();
        this.gatherRoom = room;
      }
      const piece = chunk.subarray(offset, offset + PART_SIZE - this.gatheredBytes);
      offset += piece.length;
      this.gathered ??= PART_POOL.take();
      piece.copy(this.gathered, this.gatheredBytes);
      this.gatheredBytes += piece.length;
      this.appended += piece.length;
      PART_BUFFERS.hold(piece.length);
      if (this.gatheredBytes < PART_SIZE) continue;
      // The previous part must be out before the next one leaves: this wait is the fill's backpressure.
      await this.sending;
      if (this.state === 'open') this.sendPart();
    }
  }

  async commit(size: number): Promise<void> {
    if (this.state !== 'open') throw new Error(`the upload of ${this.target.key} is ${this.state}`);
    this.state = 'committing';
    await this.sending;
    if (this.failure !== undefined) throw this.failure;
    if (this.appended !== size) throw new Error(`the upload got ${this.appended} bytes, the blob has ${size}`);
    const { client, bucket, key, metadata } = this.target;
    if (this.uploadId === undefined) {
      // The PutObject owns the part until it returns (an abort meanwhile must not hand its buffer out again).
      const { gathered: buffer, gatheredBytes: length, gatherRoom: room } = this;
      this.gathered = undefined;
      this.gatheredBytes = 0;
      this.gatherRoom = undefined;
      const body = buffer?.subarray(0, length) ?? Buffer.alloc(0);
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ContentType: 'application/octet-stream', Metadata: metadata }));
      } finally {
        PART_BUFFERS.letGo(length);
        if (buffer) PART_POOL.give(buffer);
        room?.();
      }
    } else {
      if (this.gatheredBytes > 0) this.sendPart();
      await this.sending;
      if (this.failure !== undefined) throw this.failure;
      const parts = [...this.parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: await this.uploadId, MultipartUpload: { Parts: parts } }));
    }
    this.state = 'committed';
    // The spool was only the followers' copy; readers still reading it hold its handle.
    await rm(this.target.spoolPath, { force: true });
  }

  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    this.aborted.abort();
    this.dropGathered();
    await this.sending;
    const uploadId = await this.uploadId?.catch(() => undefined);
    if (uploadId === undefined) return;
    // A kill -9 before this line leaves the upload behind (never an object): on real S3 a lifecycle rule
    // AbortIncompleteMultipartUpload removes it; s3rver and some S3-compatibles cannot even list it.
    const { client, bucket, key } = this.target;
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch((error: unknown) => {
      if ((error as { name?: string }).name !== 'NoSuchUpload') throw error;
    });
  }

  /** Lets go of the part being gathered and its room. */
  private dropGathered(): void {
    PART_BUFFERS.letGo(this.gatheredBytes);
    if (this.gathered) PART_POOL.give(this.gathered);
    this.gathered = undefined;
    this.gatheredBytes = 0;
    this.gatherRoom?.();
    this.gatherRoom = undefined;
  }

  private sendPart(): void {
    const buffer = this.gathered!;
    const body = buffer.subarray(0, this.gatheredBytes);
    // The part keeps its room and its buffer until it is out (or failed); the next part takes its own.
    const room = this.gatherRoom;
    this.gatherRoom = undefined;
    this.gathered = undefined;
    this.gatheredBytes = 0;
    const done = (): void => {
      PART_BUFFERS.letGo(body.length);
      PART_POOL.give(buffer);
      room?.();
    };
    this.partsSent += 1;
    const partNumber = this.partsSent;
    const { client, bucket, key, metadata } = this.target;
    this.uploadId ??= client
      .send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream', Metadata: metadata }))
      .then(({ UploadId }) => {
        if (!UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
        return UploadId;
      });
    this.sending = this.uploadId
      .then((uploadId) => client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length })))
      .then(({ ETag }) => {
        this.parts.push({ PartNumber: partNumber, ETag });
      })
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(done);
  }
}
