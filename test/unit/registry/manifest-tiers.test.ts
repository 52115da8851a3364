import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config.js';
import { tagTtlMs } from '../../../src/registry/manifest-tiers.js';
import { acceptKey } from '../../../src/registry/media-types.js';

const { manifestCache } = loadConfig({ env: {}, flags: { advertise: '127.0.0.1', 'upstream-dns': '127.0.0.1:9' } });

describe('tagTtlMs with the nginx proxies default tiers', () => {
  it.each([
    ['stable', 10 * 60_000],
    ['stable-alpine', 10 * 60_000],
    ['nightly', 10 * 60_000],
    ['1.2.3', 60 * 86_400_000],
    ['v1.25.0-alpine', 60 * 86_400_000],
    ['latest', 3_600_000],
    ['my-stable', 3_600_000], // the primary regex is anchored at the tag's start
  ])('%s', (tag, ms) => expect(tagTtlMs(tag, manifestCache)).toBe(ms));
});

describe('acceptKey', () => {
  it('ignores order, case, parameters and duplicates', () => {
    expect(acceptKey('application/vnd.OCI.image.index.v1+json; q=0.5, application/vnd.oci.image.manifest.v1+json')).toBe(
      acceptKey(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json,application/vnd.oci.image.index.v1+json']),
    );
  });
  it('tells a single-platform client from one that accepts indexes', () => {
    expect(acceptKey('application/vnd.oci.image.manifest.v1+json')).not.toBe(
      acceptKey('application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'),
    );
  });
});
