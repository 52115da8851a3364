import { describe, expect, it } from 'vitest';
import { manifestContents, ManifestContentError, MAX_DESCRIPTORS, referrerDescriptors } from '../../../src/prefetch/manifest-contents.js';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('manifestContents', () => {
  it('an index names its manifests, with their platforms', () => {
    const body = json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: digest('a'), size: 10, platform: { os: 'linux', architecture: 'amd64' } }] });
    expect(manifestContents(body, OCI_INDEX, 'm')).toEqual({ kind: 'index', manifests: [{ mediaType: OCI_MANIFEST, digest: digest('a'), size: 10, platform: { os: 'linux', architecture: 'amd64' } }] });
  });

  it('a Docker manifest list is an index too, typed by its Content-Type alone', () => {
    const body = json({ schemaVersion: 2, manifests: [{ digest: digest('a'), size: 1 }] });
    expect(manifestContents(body, 'application/vnd.docker.distribution.manifest.list.v2+json', 'm').kind).toBe('index');
  });

  it('an image names its config and layers; foreign layers are left to their own hosts', () => {
    const body = json({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest('c'), size: 2 },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest('1'), size: 3 },
        { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: digest('2'), size: 4, urls: ['https://elsewhere.example/'] },
      ],
    });
    const contents = manifestContents(body, OCI_MANIFEST, 'm');
    expect(contents.kind === 'image' && contents.blobs.map((b) => b.digest)).toEqual([digest('c'), digest('1')]);
  });

  it('an artifact manifest (blobs, no config) names its blobs', () => {
    const body = json({ mediaType: 'application/vnd.oci.artifact.manifest.v1+json', blobs: [{ digest: digest('b'), size: 5 }] });
    const contents = manifestContents(body, '', 'm');
    expect(contents.kind === 'image' && contents.blobs.map((b) => b.digest)).toEqual([digest('b')]);
  });

  it.each([
    ['not JSON', Buffer.from('{'), 'is not JSON'],
    ['an array', json([]), 'is not a JSON object'],
    ['schema 1', json({ schemaVersion: 1, fsLayers: [] }), 'schema 1'],
    ['a bad digest', json({ mediaType: OCI_INDEX, manifests: [{ digest: 'sha256:abc', size: 1 }] }), 'has no valid digest'],
    ['a digest with a path in it', json({ mediaType: OCI_MANIFEST, config: { digest: `${digest('a')}/../x`, size: 1 }, layers: [] }), 'has no valid digest'],
    ['a negative size', json({ mediaType: OCI_MANIFEST, config: { digest: digest('a'), size: -1 }, layers: [] }), 'has no valid size'],
    ['a fractional size', json({ mediaType: OCI_MANIFEST, config: { digest: digest('a'), size: 1.5 }, layers: [] }), 'has no valid size'],
    ['layers not a list', json({ mediaType: OCI_MANIFEST, config: { digest: digest('a'), size: 1 }, layers: 'x' }), 'is not a list'],
    ['nothing at all', json({ mediaType: OCI_MANIFEST }), 'names neither'],
    ['too many entries', json({ mediaType: OCI_INDEX, manifests: Array.from({ length: MAX_DESCRIPTORS + 1 }, () => ({ digest: digest('a'), size: 1 })) }), 'more than'],
  ])('refuses %s with a message naming it', (_what, body, message) => {
    expect(() => manifestContents(body, OCI_MANIFEST, 'manifest X')).toThrow(ManifestContentError);
    expect(() => manifestContents(body, OCI_MANIFEST, 'manifest X')).toThrow(message);
  });

  it('a referrers answer must be an index', () => {
    expect(referrerDescriptors(json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), 'r')).toEqual([]);
    expect(() => referrerDescriptors(json({ mediaType: OCI_MANIFEST, config: { digest: digest('a'), size: 1 }, layers: [] }), 'r')).toThrow('not an index of referrers');
  });
});
