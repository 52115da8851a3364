import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../../../src/registry/digest.js';
import { REDIRECT_KEY_FILE, loadOrCreateRedirectKey, signedPath, verifySignedRequest, type StorageRedirect } from '../../../src/proxy/redirects/signed-url.js';

const key = Buffer.alloc(32, 7);
const now = Date.UTC(2026, 0, 1);
const redirect: StorageRedirect = {
  digest: digestOf(Buffer.from('blob')),
  registry: 'quay.io',
  repo: 'org/app',
  expires: now / 1000 + 600,
  target: 'https://cdn01.quay.io/sha256/ab/abc?X-Amz-Signature=s3cr3t&X-Amz-Expires=600',
};

/** The digest (from the path) and query of a signed path, as the route sees them. */
function parts(path: string): [string, URLSearchParams] {
  const url = new URL(path, 'https://docker.proxy');
  return [url.pathname.split('/').pop()!, url.searchParams];
}

describe('signed docker.proxy URLs', () => {
  it('verify what they sign', () => {
    const path = signedPath(key, redirect);
    expect(path.startsWith(`/layover/blobs/${redirect.digest}?`)).toBe(true);
    // The storage URL travels encoded: its query never appears as a query of ours.
    expect(path).not.toContain('X-Amz-Signature');
    expect(verifySignedRequest(key, ...parts(path), now)).toEqual(redirect);
  });

  it('refuse a URL without a signature', () => {
    const [digest, query] = parts(signedPath(key, redirect));
    query.delete('sig');
    expect(verifySignedRequest(key, digest, query, now)).toBe('unsigned');
  });

  it.each([
    ['target', (q: URLSearchParams) => q.set('target', Buffer.from('http://169.254.169.254/').toString('base64url'))],
    ['registry', (q: URLSearchParams) => q.set('registry', 'ghcr.io')],
    ['repo', (q: URLSearchParams) => q.set('repo', 'org/other')],
    ['expires', (q: URLSearchParams) => q.set('expires', String(now / 1000 + 86_400))],
    ['sig', (q: URLSearchParams) => q.set('sig', Buffer.alloc(32).toString('base64url'))],
    ['sig length', (q: URLSearchParams) => q.set('sig', 'AAAA')],
  ])('refuse a tampered %s', (_name, tamper) => {
    const [digest, query] = parts(signedPath(key, redirect));
    tamper(query);
    expect(verifySignedRequest(key, digest, query, now)).toBe('bad-signature');
  });

  it('refuse another digest in the path', () => {
    const [, query] = parts(signedPath(key, redirect));
    expect(verifySignedRequest(key, digestOf(Buffer.from('other')), query, now)).toBe('bad-signature');
  });

  it('refuse a URL signed with another key', () => {
    expect(verifySignedRequest(Buffer.alloc(32, 8), ...parts(signedPath(key, redirect)), now)).toBe('bad-signature');
  });

  it('refuse an expired URL, and accept it until then', () => {
    const [digest, query] = parts(signedPath(key, redirect));
    expect(verifySignedRequest(key, digest, query, redirect.expires * 1000 - 1)).toEqual(redirect);
    expect(verifySignedRequest(key, digest, query, redirect.expires * 1000)).toBe('expired');
  });

  it('refuse repeated or malformed parameters', () => {
    const [digest, query] = parts(signedPath(key, redirect));
    const repeated = new URLSearchParams(query);
    repeated.append('target', query.get('target')!);
    expect(verifySignedRequest(key, digest, repeated, now)).toBe('malformed');
    expect(verifySignedRequest(key, 'sha256:1234', query, now)).toBe('malformed');
  });
});

describe('the redirect key', () => {
  it('is created once, 32 bytes, mode 0600, and reused', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'layover-key-')), 'data');
    const first = await loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE));
    expect(first).toHaveLength(32);
    expect(statSync(join(dir, 'redirect.key')).mode & 0o777).toBe(0o600);
    expect((await loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE))).equals(first)).toBe(true);
    expect(readFileSync(join(dir, 'redirect.key')).equals(first)).toBe(true);
  });

  it('concurrent first starts agree on one key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'layover-key-'));
    const keys = await Promise.all([loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE)), loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE)), loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE))]);
    expect(keys[1]!.equals(keys[0]!) && keys[2]!.equals(keys[0]!)).toBe(true);
  });

  it('refuses a key file of the wrong length', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'layover-key-'));
    writeFileSync(join(dir, 'redirect.key'), 'short');
    await expect(loadOrCreateRedirectKey(join(dir, REDIRECT_KEY_FILE))).rejects.toThrow(/expected 32 bytes, found 5/);
  });
});
