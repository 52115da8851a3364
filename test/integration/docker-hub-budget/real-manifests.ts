/**
 * A real image's manifests for the Docker Hub fixture: the bench's test images (an OCI index of two
 * platforms, and a single-platform image) pushed with skopeo to the real distribution registry, and
 * read back exactly as it serves them. The sandbox is gone once the bytes are in hand.
 */
import { startBench } from '../../bench/bench.js';

export interface RealManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface RealImages {
  /** The two-platform index (`bench/multi:v1`). */
  index: RealManifest;
  /** The index's platform manifests. */
  platforms: RealManifest[];
  /** A single-platform image (`bench/oci:v1`). */
  single: RealManifest;
  all: RealManifest[];
}

export async function realManifests(): Promise<RealImages> {
  const bench = await startBench({ images: ['oci', 'multi'], layover: false });
  try {
    const multi = bench.images.multi!;
    const oci = bench.images.oci!;
    const index = { digest: multi.digest, mediaType: multi.mediaType, bytes: Buffer.from(multi.raw) };
    const platforms = multi.manifests.map((m) => ({ digest: m.digest, mediaType: m.mediaType, bytes: Buffer.from(m.raw) }));
    const single = { digest: oci.digest, mediaType: oci.mediaType, bytes: Buffer.from(oci.raw) };
    return { index, platforms, single, all: [index, ...platforms, single] };
  } finally {
    await bench.close();
  }
}
