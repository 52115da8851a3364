import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import type { BlobCache } from '../../../src/cache/blob-cache.js';
import { digestOf, type Digest } from '../../../src/registry/digest.js';
import { blob, meta } from '../cache/cache-fixture.js';

// An image stored in a real BlobCache as a pull through Layover leaves it: blobs, the manifest stored as
// a blob, the tag record src/proxy/manifest-route.ts writes, the access records src/access/ writes.

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface Image {
  manifest: Digest;
  config: Digest;
  layers: Digest[];
}

/** Stores an image of `repository` (registry.test) as a pull through Layover would: blobs, manifest, tag and access records. */
export async function pullImage(cache: BlobCache, repository: string, tag: string | null, layers: Array<{ bytes: Buffer; digest: Digest }>, registry = 'registry.test'): Promise<Image> {
  const config = blob(50);
  const records = new AccessRecords(cache);
  const seen = repositoryKey(`https://${registry}`, repository);
  for (const part of [config, ...layers]) {
    await cache.put(part.digest, part.bytes, meta({ source: `${registry}/${repository}` }));
    await records.addMember(part.digest, seen);
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: config.digest, size: 50 }, layers: layers.map((l) => ({ digest: l.digest, size: l.bytes.length })) }));
  const manifest = digestOf(body);
  await cache.put(manifest, body, { size: body.length, mediaType: OCI_MANIFEST, kind: 'manifest', source: `${registry}/${repository}` });
  await records.addMember(manifest, seen);
  if (tag) await cache.setRecord(`tag:${registry}/${repository}:${tag}|application/vnd.oci.image.manifest.v1+json`, { digest: manifest, fetchedAt: Date.now() });
  return { manifest, config: config.digest, layers: layers.map((l) => l.digest) };
}

export const digestsOf = (image: Image): Digest[] => [image.manifest, image.config, ...image.layers];
