import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest, type Digest } from '../../registry/digest.js';

export const REDIRECT_KEY_FILE = 'redirect.key';
const KEY_BYTES = 32;
/** The path every signed docker.proxy URL has, before the digest. */
export const DOCKER_PROXY_BLOB_PREFIX = '/layover/blobs/';
/** Query parameter names; `target` and `sig` are redacted in logs (src/log/redact-url.ts). */
const PARAMS = ['registry', 'repo', 'expires', 'target', 'sig'] as const;

/** What a docker.proxy URL stands for: one blob, where to fetch it, on whose behalf, until when. */
export interface StorageRedirect {
  digest: Digest;
  /** The intercepted registry name whose blob GET answered with the redirect. */
  registry: string;
  repo: string;
  /** The storage URL the registry redirected to (absolute; its own signature included). */
  target: string;
  /** Unix seconds. */
  expires: number;
}

export type VerifyFailure = 'unsigned' | 'malformed' | 'bad-signature' | 'expired';

/** The loaded key of `<data-dir>/redirect.key`; created once (32 random bytes, mode 0600). */
export async function loadOrCreateRedirectKey(dataDir: string): Promise<Buffer> {
  const path = join(dataDir, REDIRECT_KEY_FILE);
  await mkdir(dataDir, { recursive: true });
  let key = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!key) {
    // Written whole under another name, then linked into place: no reader ever sees half a key,
    // and of two processes racing, the second links onto EEXIST and reads the first one's key.
    const tmp = `${path}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, randomBytes(KEY_BYTES), { mode: 0o600 });
    try {
      await link(tmp, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(tmp, { force: true });
    }
    key = await readFile(path);
  }
  if (key.length !== KEY_BYTES) throw new Error(`${path}: expected ${KEY_BYTES} bytes, found ${key.length}; remove it to make a new key`);
  return key;
}

const payload = (r: StorageRedirect): string => JSON.stringify(['layover-redirect-v1', r.digest, r.registry, r.repo, r.expires, r.target]);

/** HMAC-SHA256 of the redirect's fields, base64url. */
export function signature(key: Buffer, redirect: StorageRedirect): string {
  return createHmac('sha256', key).update(payload(redirect)).digest('base64url');
}

/** Path and query of the docker.proxy URL for `redirect`, e.g. `/layover/blobs/sha256:…?registry=…&sig=…`. */
export function signedPath(key: Buffer, redirect: StorageRedirect): string {
  const query = new URLSearchParams({
    registry: redirect.registry,
    repo: redirect.repo,
    expires: String(redirect.expires),
    target: Buffer.from(redirect.target, 'utf8').toString('base64url'),
    sig: signature(key, redirect),
  });
  return `${DOCKER_PROXY_BLOB_PREFIX}${redirect.digest}?${query.toString()}`;
}

/**
 * Checks a docker.proxy request (`digest` from its path, `query` its parsed query string) against
 * the key: the signature first (compared in constant time), then the expiry.
 */
export function verifySignedRequest(key: Buffer, digestText: string, query: URLSearchParams, nowMs = Date.now()): StorageRedirect | VerifyFailure {
  if (!query.has('sig')) return 'unsigned';
  const values = PARAMS.map((name) => query.getAll(name));
  if (values.some((v) => v.length !== 1)) return 'malformed';
  const [registry, repo, expiresText, targetText, sig] = values.map((v) => v[0]!) as [string, string, string, string, string];
  const digest = parseDigest(digestText);
  if (!digest || !/^\d{1,12}$/.test(expiresText) || !/^[A-Za-z0-9_-]+$/.test(targetText)) return 'malformed';
  const redirect: StorageRedirect = { digest, registry, repo, expires: Number(expiresText), target: Buffer.from(targetText, 'base64url').toString('utf8') };
  const expected = Buffer.from(signature(key, redirect), 'base64url');
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad-signature';
  if (redirect.expires * 1000 <= nowMs) return 'expired';
  return redirect;
}
