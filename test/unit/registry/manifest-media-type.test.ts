import { describe, expect, it } from 'vitest';
import { manifestMediaType } from '../../../src/registry/manifest-media-type.js';

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

describe('manifestMediaType', () => {
  it('is the manifest\'s own mediaType field', () => {
    expect(manifestMediaType(json({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: {}, layers: [] }))).toBe(
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    expect(manifestMediaType(json({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }))).toBe('application/vnd.oci.image.index.v1+json');
  });

  it('without one, reads the type from the shape, as the distribution registry does', () => {
    expect(manifestMediaType(json({ schemaVersion: 2, config: {}, layers: [] }))).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifestMediaType(json({ schemaVersion: 2, manifests: [] }))).toBe('application/vnd.oci.image.index.v1+json');
    expect(manifestMediaType(json({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [], signatures: [{}] }))).toBe('application/vnd.docker.distribution.manifest.v1+prettyjws');
    expect(manifestMediaType(json({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [] }))).toBe('application/vnd.docker.distribution.manifest.v1+json');
  });

  it.each([
    ['a header injection', 'application/json\r\nSet-Cookie: a=b'],
    ['parameters', 'application/vnd.oci.image.manifest.v1+json; charset=utf-8'],
    ['no subtype', 'text'],
    ['another top-level type', 'text/html'],
    ['a number', 42],
  ])('ignores a mediaType field with %s', (_case, mediaType) => {
    expect(manifestMediaType(json({ schemaVersion: 2, mediaType, config: {}, layers: [] }))).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('types bytes that are not a JSON object as octet-stream', () => {
    expect(manifestMediaType(Buffer.from('<html>not a manifest</html>'))).toBe('application/octet-stream');
    expect(manifestMediaType(json([1, 2]))).toBe('application/octet-stream');
    expect(manifestMediaType(json(null))).toBe('application/octet-stream');
  });
});
