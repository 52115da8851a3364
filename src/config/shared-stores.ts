import { hostPort, type HostPort } from './parsers.js';
import { Secret } from './secret.js';

/** Where verified blobs live: files under the data directory (default), or an S3-compatible bucket. */
export type BlobStoreConfig =
  | { readonly kind: 'file' }
  | {
      readonly kind: 's3';
      readonly bucket: string;
      /** Key prefix without leading or trailing slash ('' for the bucket's root). */
      readonly prefix: string;
      /** null: the SDK's own (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS). */
      readonly endpoint: string | null;
      /** null: the SDK's own (AWS_REGION, the shared config file). */
      readonly region: string | null;
      /** Path-style addressing (MinIO, Ceph RGW, s3rver) instead of bucket-name hosts. */
      readonly pathStyle: boolean;
    };

/** Where the cache index and its records live: SQLite in the data directory (default), or a shared Redis or Postgres. */
export type CacheIndexConfig = { readonly kind: 'sqlite' } | { readonly kind: 'redis' | 'postgres'; readonly url: Secret };

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * `file`, or `s3://bucket[/prefix][?endpoint=https://host:port&region=r&pathStyle=true]`; a string
 * describing what is wrong otherwise.
 */
export function parseBlobStore(value: string): BlobStoreConfig | string {
  if (value === 'file') return { kind: 'file' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'expected file or s3://bucket/prefix';
  }
  if (url.protocol !== 's3:') return 'expected file or s3://bucket/prefix';
  if (url.username || url.password) return 'credentials do not belong in the URL: they come from the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, roles)';
  if (!BUCKET.test(url.hostname)) return `"${url.hostname}" is not an S3 bucket name`;
  const unknown = [...url.searchParams.keys()].filter((key) => !['endpoint', 'region', 'pathStyle'].includes(key));
  if (unknown.length > 0) return `unknown parameter ${unknown[0]} (known: endpoint, region, pathStyle)`;
  const endpoint = url.searchParams.get('endpoint');
  if (endpoint !== null) {
    try {
      const parsed = new URL(endpoint);
      if (parsed.username || parsed.password) return 'endpoint: credentials do not belong in the URL: they come from the standard AWS chain';
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return `endpoint: expected an http(s) URL, got "${endpoint}"`;
    } catch {
      return `endpoint: expected an http(s) URL, got "${endpoint}"`;
    }
  }
  const pathStyle = url.searchParams.get('pathStyle');
  if (pathStyle !== null && pathStyle !== 'true' && pathStyle !== 'false') return `pathStyle: expected true or false, got "${pathStyle}"`;
  return {
    kind: 's3',
    bucket: url.hostname,
    prefix: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
    endpoint,
    region: url.searchParams.get('region'),
    // Custom endpoints are nearly always MinIO, Ceph or a stand-in, which want path style.
    pathStyle: pathStyle === null ? endpoint !== null : pathStyle === 'true',
  };
}

/** `sqlite`, `redis://…`/`rediss://…`, or `postgres://…`/`postgresql://…`. The URL may hold a password: kept as a Secret. */
export function parseCacheIndex(value: string): CacheIndexConfig | string {
  if (value === 'sqlite') return { kind: 'sqlite' };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'expected sqlite, redis://host:port or postgres://user@host/db';
  }
  if (url.protocol === 'redis:' || url.protocol === 'rediss:') return { kind: 'redis', url: new Secret(value) };
  if (url.protocol === 'postgres:' || url.protocol === 'postgresql:') return { kind: 'postgres', url: new Secret(value) };
  return 'expected sqlite, redis://host:port or postgres://user@host/db';
}

/**
 * PEER_ADDRESS: where the other replicas reach this one (its HTTPS listener) to follow a fill it started;
 * `off`, `IP`, `IP:PORT` or `[IPv6]:PORT`. Unset: `fallbackIp` at the HTTPS port. Only a shared index has
 * peers: null otherwise. A string describing what is wrong for a bad value.
 */
export function parsePeerAddress(value: string | undefined, cacheIndex: CacheIndexConfig, httpsPort: number, fallbackIp: () => string): HostPort | null | string {
  if (cacheIndex.kind === 'sqlite' || value?.toLowerCase() === 'off') return null;
  const parsed = hostPort(value ?? fallbackIp(), httpsPort);
  if (!parsed) return `expected IP, IP:PORT or [IPv6]:PORT, or off, got "${value}"`;
  // Peers dial this address: "every address" names none of them.
  if (parsed.host === '0.0.0.0' || parsed.host === '::') return `expected an address the other replicas can dial, not ${parsed.host}`;
  return parsed;
}
