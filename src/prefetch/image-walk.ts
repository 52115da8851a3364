import type { BlobCache } from '../cache/blob-cache.js';
import { digestHex, digestOf, parseDigest, type Digest } from '../registry/digest.js';
import { isTag } from '../registry/repository-name.js';
import { formatPlatform, platformMatches, type ImageReference, type Platform } from './image-reference.js';
import type { FetchedManifest, InProcessClient } from './in-process-client.js';
import { manifestContents, ManifestContentError, MAX_DESCRIPTORS, referrerDescriptors, type Descriptor } from './manifest-contents.js';

export interface WalkEvents {
  manifest(digest: string, mediaType: string, bytes: number): void;
  blobFound(digest: string): void;
  blobStarted(digest: string, size: number): void;
  bytes(count: number): void;
  blobDone(digest: string, bytes: number, cached: boolean): void;
  /** A started blob that failed or was stopped. */
  blobEnded(digest: string): void;
}

export interface ImageWalkOptions {
  readonly client: InProcessClient;
  readonly cache: Pick<BlobCache, 'stat'>;
  /** With pushes on, a blob HEAD asks the upstream, not the cache: no shortcut for cached blobs then. */
  readonly allowPush: boolean;
  readonly reference: ImageReference;
  readonly platform: Platform | null;
  readonly referrers: boolean;
  /** Everything stops (deadline, Layover stopping). */
  readonly signal: AbortSignal;
  /** Nothing new starts. */
  readonly stopStarting: AbortSignal;
  readonly blobConcurrency: number;
  readonly on: WalkEvents;
}

/** Manifests of one image, referrers included: more is no image but a hostile graph. */
const MAX_MANIFESTS = 1000;
/** Referrers of referrers (a signature of an SBOM) and no deeper. */
const MAX_REFERRER_DEPTH = 2;
/** Indexes inside indexes. */
const MAX_INDEX_DEPTH = 4;

/** One image's manifests, then its blobs: what a pull of it (every platform, or one) would fetch. */
export class ImageWalk {
  readonly #manifests = new Set<string>();
  readonly #blobs = new Map<Digest, Descriptor>();
  readonly #where;

  constructor(private readonly options: ImageWalkOptions) {
    this.#where = { host: options.reference.host, repository: options.reference.repository };
  }

  async run(): Promise<{ manifests: number; blobs: number; bytes: number }> {
    const { reference } = this.options;
    const asked = 'digest' in reference.reference ? reference.reference.digest : reference.reference.tag;
    const top = (await this.#fetchManifest(asked))!;
    const digest = (top.digest && parseDigest(top.digest)) || digestOf(top.body);
    await this.#visit(top, digest, { indexDepth: 0, referrerDepth: 0 });
    const bytes = await this.#fetchBlobs();
    return { manifests: this.#manifests.size, blobs: this.#blobs.size, bytes };
  }

  async #fetchManifest(reference: string, missingIsNull = false): Promise<FetchedManifest | null> {
    this.#checkStart();
    const fetched = await this.options.client.manifest(this.#where, reference, this.options.signal, missingIsNull);
    if (fetched) {
      const digest = (fetched.digest && parseDigest(fetched.digest)) || digestOf(fetched.body);
      this.options.on.manifest(digest, fetched.mediaType, fetched.body.length);
    }
    return fetched;
  }

  async #visit(manifest: FetchedManifest, digest: Digest, depth: { indexDepth: number; referrerDepth: number }): Promise<void> {
    if (this.#manifests.has(digest)) return;
    this.#manifests.add(digest);
    if (this.#manifests.size > MAX_MANIFESTS) throw new ManifestContentError(`more than ${MAX_MANIFESTS} manifests in one image`);
    const contents = manifestContents(manifest.body, manifest.mediaType, `manifest ${digest}`);
    if (contents.kind === 'index') {
      if (depth.indexDepth >= MAX_INDEX_DEPTH) throw new ManifestContentError(`manifest ${digest}: indexes nested deeper than ${MAX_INDEX_DEPTH}`);
      for (const child of this.#platformsOf(contents.manifests, depth)) {
        if (this.#manifests.has(child.digest)) continue;
        const fetched = (await this.#fetchManifest(child.digest))!;
        await this.#visit(fetched, child.digest, { ...depth, indexDepth: depth.indexDepth + 1 });
      }
    } else {
      for (const blob of contents.blobs) {
        if (this.#blobs.has(blob.digest)) continue;
        if (this.#blobs.size >= MAX_DESCRIPTORS * 10) throw new ManifestContentError(`more than ${MAX_DESCRIPTORS * 10} blobs in one image`);
        this.#blobs.set(blob.digest, blob);
        this.options.on.blobFound(blob.digest);
      }
    }
    if (this.options.referrers && depth.referrerDepth < MAX_REFERRER_DEPTH) await this.#visitReferrers(digest, depth);
  }

  /** The index's entries to fetch: all of them, or those of the platform asked for (an error at the top when none is). */
  #platformsOf(entries: readonly Descriptor[], depth: { indexDepth: number; referrerDepth: number }): readonly Descriptor[] {
    const { platform } = this.options;
    // Referrers and their indexes are about the image: not platform-specific.
    if (!platform || depth.referrerDepth > 0) return entries;
    const chosen = entries.filter((entry) => platformMatches(platform, entry.platform));
    if (chosen.length === 0 && depth.indexDepth === 0) {
      const offered = entries.map((entry) => (entry.platform ? formatPlatform(entry.platform as Platform) : '?')).join(', ');
      throw new ManifestContentError(`the index has no manifest for ${formatPlatform(platform)} (it has ${offered || 'none'})`);
    }
    return chosen;
  }

  /**
   * What the referrers API lists for `digest`; where the registry has none (404), the tag schema's
   * `<alg>-<hex>` index instead (OCI distribution spec 1.1, "referrers tag schema").
   */
  async #visitReferrers(digest: Digest, depth: { indexDepth: number; referrerDepth: number }): Promise<void> {
    this.#checkStart();
    let list = await this.options.client.referrers(this.#where, digest, this.options.signal);
    if (list === null) {
      const tag = `${digest.slice(0, 6)}-${digestHex(digest)}`;
      list = isTag(tag) ? ((await this.#fetchManifest(tag, true))?.body ?? null) : null;
    }
    if (list === null) return;
    for (const referrer of referrerDescriptors(list, `the referrers of ${digest}`)) {
      if (this.#manifests.has(referrer.digest)) continue;
      const fetched = (await this.#fetchManifest(referrer.digest))!;
      await this.#visit(fetched, referrer.digest, { indexDepth: 0, referrerDepth: depth.referrerDepth + 1 });
    }
  }

  /** Every blob read to its end, `blobConcurrency` at once; the first failure stops new starts and is thrown. */
  async #fetchBlobs(): Promise<number> {
    const queue = [...this.#blobs.values()];
    let next = 0;
    let total = 0;
    let failure: { error: unknown } | null = null;
    const worker = async (): Promise<void> => {
      while (next < queue.length && failure === null) {
        const blob = queue[next++]!;
        try {
          total += await this.#fetchBlob(blob);
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.blobConcurrency, queue.length) }, worker));
    if (failure !== null) throw (failure as { error: unknown }).error;
    return total;
  }

  async #fetchBlob(blob: Descriptor): Promise<number> {
    this.#checkStart();
    const { client, cache, on, signal } = this.options;
    on.blobStarted(blob.digest, blob.size);
    try {
      // Already cached: a HEAD through the routes (access checked, nothing read from disk).
      if (!this.options.allowPush && cache.stat(blob.digest) && (await client.hasBlob(this.#where, blob.digest, signal))) {
        on.blobDone(blob.digest, 0, true);
        return 0;
      }
      const bytes = await client.blob(this.#where, blob.digest, blob.size, signal, (count) => on.bytes(count));
      if (bytes === null) {
        on.blobDone(blob.digest, 0, true);
        return 0;
      }
      if (bytes !== blob.size) throw new Error(`blob ${blob.digest}: ${bytes} bytes came, its manifest says ${blob.size}`);
      on.blobDone(blob.digest, bytes, false);
      return bytes;
    } catch (error) {
      on.blobEnded(blob.digest);
      throw error;
    }
  }

  #checkStart(): void {
    this.options.signal.throwIfAborted();
    const stop = this.options.stopStarting;
    if (stop.aborted) throw stop.reason instanceof Error ? stop.reason : new Error('stopped');
  }
}
