/**
 * Review of issue 12: a hostile registry's manifest (up to 4 MiB) can name tens of thousands of
 * digests; the catalog behind pins, purges and the image listing reads at most 1,000 of each list,
 * and keeps a bounded number of digests in memory however many such manifests are cached.
 */
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { manifestReferences } from '../../../src/cache/manifest-references.js';

const digest = (i: number): string => `sha256:${createHash('sha256').update(String(i)).digest('hex')}`;

it('reads at most 1,000 descriptors of a list', () => {
  const layers = Array.from({ length: 20_000 }, (_, i) => ({ digest: digest(i), size: 1, mediaType: 'application/octet-stream' }));
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: digest(-1) }, layers, manifests: layers }));
  const references = manifestReferences(body)!;
  expect(references.blobs.length).toBe(1_001);
  expect(references.manifests.length).toBe(1_000);
});

it('still reads every layer of a real image', () => {
  const layers = Array.from({ length: 127 }, (_, i) => ({ digest: digest(i) }));
  const references = manifestReferences(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: digest(-1) }, layers })))!;
  expect(references.blobs).toEqual([digest(-1), ...layers.map((l) => l.digest)]);
});
