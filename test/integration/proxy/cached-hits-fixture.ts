/**
 * Cached content every hit test starts from: a manifest (also under a tag ENABLE_MANIFEST_CACHE keeps
 * fresh), a small blob held in memory and a larger one, and the access records that let anyone read
 * them, as after an anonymous pull. The upstream resolver of these Layovers is a closed loopback port:
 * a request that went upstream would fail instead of leaving the host.
 */
import { AccessRecords, repositoryKey } from '../../../src/access/access-records.js';
import { tagRecordKey } from '../../../src/proxy/manifest-route.js';
import { SMALL_BLOB_BYTES } from '../../../src/proxy/small-blob.js';
import type { Digest } from '../../../src/registry/digest.js';
import { digestOf } from '../../../src/registry/digest.js';
import type { RepositoryName } from '../../../src/registry/repository-name.js';
import type { RunningLayover } from '../../helpers/start-layover.js';
import { blob } from '../../unit/cache/cache-fixture.js';

export const HOST = 'registry.test';
export const REPO = 'team/app';
export const TAG = 'v1';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [],
  }),
);
export const manifestDigest = digestOf(manifest);
export const small = blob(1500);
export const large = blob(SMALL_BLOB_BYTES + 1000);

/** Cached bytes and the records that let anyone read them (as after an anonymous pull). */
export async function seed(layover: RunningLayover): Promise<void> {
  const { cache } = layover.app;
  await cache.put(manifestDigest, manifest, { size: manifest.length, mediaType: 'application/vnd.oci.image.manifest.v1+json', kind: 'manifest', source: `${HOST}/${REPO}` });
  for (const b of [small, large]) await cache.put(b.digest, b.bytes, { size: b.bytes.length, mediaType: 'application/octet-stream', kind: 'blob', source: `${HOST}/${REPO}` });
  const records = new AccessRecords(cache);
  const repository = repositoryKey(`https://${HOST}`, REPO);
  for (const digest of [manifestDigest, small.digest, large.digest]) await records.addMember(digest as Digest, repository);
  await records.setReach('anonymous', repository, true, Date.now());
  // As after a pull of the tag with ENABLE_MANIFEST_CACHE on: fresh for its tier.
  await cache.setRecord(tagRecordKey(HOST, REPO as RepositoryName, TAG, OCI_MANIFEST), { digest: manifestDigest, fetchedAt: Date.now() });
}

