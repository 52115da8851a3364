import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobStoreConfig } from '../../config/shared-stores.js';
import { digestAlgorithm, digestHex, parseDigest, type Digest } from '../../registry/digest.js';
import { BlobStoreUnavailableError, type AdoptedBlob, type BlobStore, type BlobUpload, type StoredBlob, type UnfinishedUpload } from '../blob-store.js';
import type { BlobMeta, ByteRange } from '../blob-types.js';
import { isNotFound, S3ReadStream } from './s3-read-stream.js';
import { S3Upload } from './s3-upload.js';

/** A storage endpoint that accepts no connection within this long is down. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A request (a part on its way, an object being read) that moves no byte for this long has failed. */
const IDLE_TIMEOUT_MS = 60_000;

type S3Config = Extract<BlobStoreConfig, { kind: 's3' }>;

/** Object metadata written with every blob, so that reconcile can adopt an object whose row is lost. */
const META_DIGEST = 'layover-digest';
const META_KIND = 'layover-kind';
const META_MEDIA_TYPE = 'layover-media-type';

/**
 * Committed blobs as objects `<prefix>/blobs/<algorithm>/<hex>` in an S3-compatible bucket (AWS S3,
 * MinIO, Ceph RGW, GCS's S3 interface), which replicas can share. Credentials come from the SDK's
 * default chain (environment, profiles, web identity, instance roles); endpoint, region and path style
 * from BLOB_STORE. Fills are spooled locally and streamed into a multipart upload (s3-upload.ts).
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly blobsPrefix: string;
  private readonly where: string;

  constructor(config: S3Config) {
    this.bucket = config.bucket;
    this.blobsPrefix = `${config.prefix ? `${config.prefix}/` : ''}blobs/`;
    this.where = `s3://${config.bucket}/${config.prefix}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
    this.client = new S3Client({
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      // A custom endpoint (MinIO, Ceph, a stand-in) rarely cares about the region, but the signer needs one.
      ...(config.region ? { region: config.region } : config.endpoint && !process.env.AWS_REGION ? { region: 'us-east-1' } : {}),
      forcePathStyle: config.pathStyle,
      // The SDK waits forever by default: a storage host that drops packets must not hold a hit or a fill.
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: IDLE_TIMEOUT_MS },
      // Checksums only where S3 demands them: several S3-compatible stores reject the newer checksum headers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      throw new BlobStoreUnavailableError(`BLOB_STORE: cannot use ${this.where}: ${describe(error)}`, { cause: error });
    }
  }

  read(digest: Digest, range: ByteRange): S3ReadStream {
    return new S3ReadStream(this.client, { Bucket: this.bucket, Key: this.key(digest) }, range);
  }

  beginUpload(digest: Digest, spoolPath: string, meta: BlobMeta): BlobUpload {
    const metadata = { [META_DIGEST]: digest, [META_KIND]: meta.kind, [META_MEDIA_TYPE]: encodeURIComponent(meta.mediaType ?? '') };
    return new S3Upload({ client: this.client, bucket: this.bucket, key: this.key(digest), metadata, spoolPath });
  }

  async remove(digest: Digest): Promise<void> {
    // S3 answers 204 for a key that is already gone.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }));
  }

  async stat(digest: Digest): Promise<StoredBlob | null> {
    const head = await this.head(digest);
    return head && { digest, size: head.ContentLength ?? 0, modified: head.LastModified?.getTime() ?? Date.now() };
  }

  async *list(): AsyncIterable<Digest> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.blobsPrefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        const digest = this.digestOfKey(object.Key ?? '');
        if (digest) yield digest;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Nothing partial lives under a digest key (an object exists only once its upload completed), and other
   * keys in a shared bucket are not ours. Uploads left behind by a kill -9 are not objects: reconcile
   * aborts them (`unfinishedUploads`), and a lifecycle rule AbortIncompleteMultipartUpload is the backstop.
   */
  async sweepStrays(): Promise<number> {
    return 0;
  }

  /** Multipart uploads under the blobs prefix whose key names a digest; others in a shared bucket are not ours. */
  async *unfinishedUploads(): AsyncIterable<UnfinishedUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.blobsPrefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        const digest = this.digestOfKey(upload.Key ?? '');
        if (digest && upload.UploadId) yield { digest, id: upload.UploadId, started: upload.Initiated?.getTime() ?? 0 };
      }
      const more = page.IsTruncated === true && (page.NextKeyMarker !== undefined || page.NextUploadIdMarker !== undefined);
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined || uploadIdMarker !== undefined);
  }

  async abortUpload(upload: UnfinishedUpload): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(upload.digest), UploadId: upload.id }));
    } catch (error) {
      if ((error as { name?: string }).name !== 'NoSuchUpload') throw error;
    }
  }

  /**
   * An object without a row is adopted when Layover wrote it (its metadata names its digest): it was
   * completed only after its digest matched. It may just as well be another replica's fresh commit in a
   * shared bucket, so it is never deleted here; anything else under the prefix is left alone too.
   */
  async adopt(digest: Digest): Promise<AdoptedBlob | null> {
    const head = await this.head(digest);
    if (!head || head.Metadata?.[META_DIGEST] !== digest) return null;
    const kind = head.Metadata[META_KIND] === 'manifest' ? 'manifest' : 'blob';
    const mediaType = decodeURIComponent(head.Metadata[META_MEDIA_TYPE] ?? '') || null;
    return { digest, size: head.ContentLength ?? 0, modified: head.LastModified?.getTime() ?? Date.now(), kind, mediaType };
  }

  presignedUrl(digest: Digest, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }), { expiresIn: expiresInSeconds });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private key(digest: Digest): string {
    return `${this.blobsPrefix}${digestAlgorithm(digest)}/${digestHex(digest)}`;
  }

  private digestOfKey(key: string): Digest | null {
    const match = /^([a-z0-9]+)\/([0-9a-f]+)$/.exec(key.slice(this.blobsPrefix.length));
    return match ? parseDigest(`${match[1]}:${match[2]}`) : null;
  }

  private async head(digest: Digest) {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }));
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }
}

/** The SDK's reason, without anything signed (its messages carry no credentials), and what it usually means. */
function describe(error: unknown): string {
  const { name, message, $metadata } = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = $metadata?.httpStatusCode;
  // A HEAD answer has no body: the SDK then says only "UnknownError".
  const said = message && message !== name && message !== 'UnknownError' ? `: ${message}` : '';
  const hint = status === 404 ? ' (no such bucket)' : status === 403 ? ' (access denied: check the credentials the AWS chain finds)' : '';
  return `${name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}${said}${hint}`;
}
