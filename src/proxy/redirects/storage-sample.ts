import type { HeldBytes } from '../../access/upstream-probe.js';
import { StorageFetchError } from './storage-fetch.js';
import type { StorageRedirects } from './storage-redirects.js';

/**
 * HeldBytes.fetchStorage: a storage redirect followed for a sample of a blob, under the same address
 * policy as any storage fetch. A storage host that answers no 200/206, is refused or redirects in
 * circles shows nothing (null); one that cannot be reached rejects.
 */
export function storageSample(redirects: StorageRedirects): HeldBytes['fetchStorage'] {
  return async (target, origin, range) => {
    try {
      const response = await redirects.fetch(target, origin, 'GET', range);
      return { statusCode: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      if (error instanceof StorageFetchError && error.reason !== 'unreachable') return null;
      throw error;
    }
  };
}
