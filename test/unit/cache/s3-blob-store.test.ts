import { expect } from 'vitest';
import { blobStoreSuite } from './blob-store-suite.js';
import { startS3rver, useS3rverCredentials } from './s3rver-fixture.js';

blobStoreSuite('S3 (s3rver)', async () => {
  useS3rverCredentials();
  const s3 = await startS3rver();
  return {
    config: s3.config('layover/cache'),
    expectNoLeftovers: async () => expect(await s3.openUploads()).toEqual([]),
  };
});
