import type { HeldBytes } from '../../access/upstream-probe.js';
import { StorageFetchError } from './storage-fetch.js';
import type { StorageRedirects } from './storage-redirects.js';

/**
 * HeldBytes.fetchStorage: a storage redirect followed for a sample of a blob, under the same address
 * policy as any storage fetch. A storage host that is refused, redirects in circles or answers a 4xx
 * shows nothing (null); one that cannot be reached, or answers 5xx or 429, rejects (it may show the
 * bytes later).
 */
export function storageSample(redirects: StorageRedirects): HeldBytes['fetchStorage'] {
  return async (target, origin, range) => {
    try {
      const response = await redirects.fetch(target, origin, 'GET', range);
      return { statusCode: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      if (!(error instanceof StorageFetchError) || error.reason === 'unreachable') throw error;
      if (error.reason === 'status' && (error.status === 429 || (error.status ?? 0) >= 500)) throw error;
      return null;
    }
  };
}
