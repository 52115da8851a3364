import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../../config/config-error.js';
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

export interface KeyFileOptions {
  /** false on a shared cache index: a key made here would be this replica's alone. */
  createIfMissing: boolean;
}

/**
 * The key in `file` (REDIRECT_KEY_FILE, default `<data-dir>/redirect.key`), made there on first
 * use (32 random bytes, mode 0600) unless `createIfMissing` is off: replicas of one shared index
 * must sign with one key, or a docker.proxy URL that one signed is refused by the next.
 */
export async function loadOrCreateRedirectKey(file: string, { createIfMissing }: KeyFileOptions = { createIfMissing: true }): Promise<Buffer> {
  let key = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!key) {
    if (!createIfMissing) {
      throw new ConfigError(
        `REDIRECT_KEY_FILE: ${file} does not exist, and replicas sharing CACHE_INDEX must sign with one key (with keys of their own they refuse each other's docker.proxy URLs): make it once (${KEY_BYTES} random bytes, mode 0600) and give every replica the same file`,
      );
    }
    await mkdir(dirname(file), { recursive: true });
    // Written whole under another name, then linked into place: no reader ever sees half a key,
    // and of two processes racing, the second links onto EEXIST and reads the first one's key.
    const tmp = `${file}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, randomBytes(KEY_BYTES), { mode: 0o600 });
    try {
      await link(tmp, file).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(tmp, { force: true });
    }
    key = await readFile(file);
  }
  if (key.length !== KEY_BYTES) throw new Error(`${file}: expected ${KEY_BYTES} bytes, found ${key.length}; remove it to make a new key`);
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
