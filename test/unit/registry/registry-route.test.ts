import { describe, expect, it } from 'vitest';
import { parseRegistryPath } from '../../../src/registry/registry-route.js';
import { OciError } from '../../../src/registry/oci-errors.js';

const SHA256 = `sha256:${'a'.repeat(64)}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

const codeOf = (path: string): string => {
  try {
    parseRegistryPath(path);
  } catch (error) {
    expect(error).toBeInstanceOf(OciError);
    return (error as OciError).code;
  }
  throw new Error(`expected ${path} to be refused`);
};

describe('parseRegistryPath', () => {
  it('recognises the registry API', () => {
    expect(parseRegistryPath('/v2/')).toEqual({ kind: 'ping' });
    expect(parseRegistryPath('/v2')).toEqual({ kind: 'ping' });
    expect(parseRegistryPath('/v2/_catalog')).toEqual({ kind: 'catalog' });
    expect(parseRegistryPath(`/v2/library/alpine/blobs/${SHA256}`)).toEqual({ kind: 'blob', name: 'library/alpine', digest: SHA256 });
    expect(parseRegistryPath(`/v2/a/b/c/blobs/${SHA512}`)).toEqual({ kind: 'blob', name: 'a/b/c', digest: SHA512 });
    expect(parseRegistryPath('/v2/a/b/c/manifests/v1.2-rc_3')).toEqual({ kind: 'manifest', name: 'a/b/c', reference: { tag: 'v1.2-rc_3' } });
    expect(parseRegistryPath(`/v2/x/manifests/${SHA256}`)).toEqual({ kind: 'manifest', name: 'x', reference: { digest: SHA256 } });
    expect(parseRegistryPath('/v2/x/y/tags/list')).toEqual({ kind: 'tags', name: 'x/y' });
    expect(parseRegistryPath(`/v2/x/referrers/${SHA256}`)).toEqual({ kind: 'referrers', name: 'x', digest: SHA256 });
    expect(parseRegistryPath('/v2/x/blobs/uploads/')).toEqual({ kind: 'upload', name: 'x' });
    expect(parseRegistryPath('/v2/x/blobs/uploads/123-abc')).toEqual({ kind: 'upload', name: 'x' });
  });

  it('leaves paths outside the API alone', () => {
    expect(parseRegistryPath('/token')).toBeNull();
    expect(parseRegistryPath('/v2/x/unknown/thing')).toBeNull();
  });

  it.each([
    ['/v2/../etc/blobs/x', 'NAME_INVALID'],
    ['/v2/a/%2e%2e/manifests/latest', 'NAME_INVALID'],
    ['/v2/a//b/manifests/latest', 'NAME_INVALID'],
    ['/v2/UPPER/manifests/latest', 'NAME_INVALID'],
    [`/v2/${'a'.repeat(256)}/manifests/latest`, 'NAME_INVALID'],
    ['/v2/a/blobs/sha256:abc', 'DIGEST_INVALID'],
    [`/v2/a/blobs/md5:${'a'.repeat(32)}`, 'DIGEST_INVALID'],
    [`/v2/a/blobs/sha256:${'A'.repeat(64)}`, 'DIGEST_INVALID'],
    [`/v2/a/blobs/sha512:${'a'.repeat(64)}`, 'DIGEST_INVALID'],
    ['/v2/a/manifests/sha256:short', 'DIGEST_INVALID'],
    ['/v2/a/manifests/.hidden', 'MANIFEST_UNKNOWN'],
    ['/v2/a/manifests/.INVALID_MANIFEST_NAME', 'MANIFEST_UNKNOWN'],
    [`/v2/a/manifests/${'t'.repeat(129)}`, 'MANIFEST_UNKNOWN'],
  ])('refuses %s with %s', (path, code) => {
    expect(codeOf(path)).toBe(code);
  });
});
