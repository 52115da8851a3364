import type { BlobStoreConfig } from '../../config/shared-stores.js';
import type { BlobStore } from '../blob-store.js';
import type { CacheLayout } from '../cache-layout.js';
import { FileBlobStore } from './file.js';

/**
 * The blob store BLOB_STORE names. The S3 store is loaded only when asked for: the AWS SDK adds
 * start-up time and memory that the default single-process Layover does not need.
 */
export async function createBlobStore(config: BlobStoreConfig, layout: CacheLayout): Promise<BlobStore> {
  switch (config.kind) {
    case 'file':
      return new FileBlobStore(layout);
    case 's3': {
      const { S3BlobStore } = await import('./s3.js');
      return new S3BlobStore(config);
    }
  }
}
