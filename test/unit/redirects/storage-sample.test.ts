/**
 * What a storage host's failure means for a registry asked to show a blob's bytes (src/access/): a
 * refusal, a redirect loop or a 4xx shows nothing (a plain 404, no refutation remembered); a 5xx, a
 * 429 or an unreachable host may show them later (the check fails as unreachable, never remembered
 * against an honest registry). The failures are the fetcher's own errors, thrown by a stand-in.
 */
import { describe, expect, it } from 'vitest';
import { StorageFetchError } from '../../../src/proxy/redirects/storage-fetch.js';
import type { StorageRedirects } from '../../../src/proxy/redirects/storage-redirects.js';
import { storageSample } from '../../../src/proxy/redirects/storage-sample.js';

const failingWith = (error: Error) => storageSample({ fetch: () => Promise.reject(error) } as unknown as StorageRedirects);
const target = new URL('https://storage.example/blob');

describe('storageSample', () => {
  it('shows nothing for a refusal, a loop or a 4xx', async () => {
    for (const error of [
      new StorageFetchError('refused', 'refused', 'storage.example'),
      new StorageFetchError('hops', 'hops', 'storage.example'),
      new StorageFetchError('status', '404', 'storage.example', 404),
    ]) {
      expect(await failingWith(error)(target, 'https://registry.example', 'bytes=0-9'), error.message).toBeNull();
    }
  });

  it('fails as unreachable for a 5xx, a 429 or a host that cannot be reached', async () => {
    for (const error of [
      new StorageFetchError('status', '503', 'storage.example', 503),
      new StorageFetchError('status', '429', 'storage.example', 429),
      new StorageFetchError('unreachable', 'unreachable', 'storage.example'),
    ]) {
      await expect(failingWith(error)(target, 'https://registry.example', 'bytes=0-9'), error.message).rejects.toBe(error);
    }
  });
});
