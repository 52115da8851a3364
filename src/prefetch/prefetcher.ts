import type { FastifyInstance } from 'fastify';
import type { BlobCache } from '../cache/blob-cache.js';
import type { LayoverConfig } from '../config/layover-config.js';
import { CustomDomainRoutes } from '../registry/custom-domain-routes.js';
import { HostnameSet } from '../registry/hostname.js';
import { RegistryPorts, splitHostPort } from '../proxy/upstream-target.js';
import { parseImageReference, type ImageReference, type Platform } from './image-reference.js';
import { InProcessClient } from './in-process-client.js';
import { ImageWalk } from './image-walk.js';
import type { ImageFailure, PrefetchLine, PrefetchSummary, PrefetchTotals } from './prefetch-progress.js';

export interface PrefetchRequest {
  readonly images: readonly string[];
  /** One platform of each index; null: every platform. */
  readonly platform: Platform | null;
  /** Also what the referrers API (or its tag fallback) lists for each manifest. */
  readonly referrers: boolean;
}

export interface PrefetchControl {
  /** Once aborted, nothing new is started (the client went away); what has begun runs to its end. */
  readonly stopStarting: AbortSignal;
  /** Once aborted, everything stops at once (Layover is stopping). */
  readonly abort: AbortSignal;
}

export interface PrefetcherOptions {
  readonly https: FastifyInstance;
  readonly config: LayoverConfig;
  readonly cache: Pick<BlobCache, 'stat'>;
  /** Blobs read at once; default 4. */
  readonly blobConcurrency?: number;
  /** How long one image may take; default an hour. */
  readonly imageDeadlineMs?: number;
}

const DEFAULT_BLOB_CONCURRENCY = 4;
/** Long enough for a big image on a slow upstream; a hung one still ends. */
const DEFAULT_IMAGE_DEADLINE_MS = 60 * 60_000;
/** How often a progress line goes out while blobs are read (also keeps the admin connection busy). */
const PROGRESS_EVERY_MS = 2000;

type Emit = (line: PrefetchLine) => void;

/** The running counts of one prefetch, copied into every line. */
class Totals {
  images = 0;
  imagesDone = 0;
  blobs = 0;
  blobsDone = 0;
  bytes = 0;
  snapshot(): PrefetchTotals {
    return { images: this.images, imagesDone: this.imagesDone, blobs: this.blobs, blobsDone: this.blobsDone, bytes: this.bytes };
  }
}

/**
 * Pulls image references into the cache through Layover's own serving path (./in-process-client.ts):
 * the top manifest, every platform's manifest of an index (or one platform's), each config and
 * layer, and with `referrers` what each manifest's referrers list. Images one after the other, blobs
 * a few at once; one image's failure (a bad reference, an unknown image, its deadline) is reported
 * and the next goes on.
 */
export class Prefetcher {
  readonly #client: InProcessClient;
  readonly #intercepted: HostnameSet;
  readonly #ports: RegistryPorts;
  readonly #domains: CustomDomainRoutes;

  constructor(private readonly options: PrefetcherOptions) {
    const { config } = options;
    this.#client = new InProcessClient(options.https, config.clientAuth.mode !== 'none');
    this.#intercepted = new HostnameSet(config.registries);
    this.#ports = new RegistryPorts(config.registryPatterns);
    this.#domains = new CustomDomainRoutes(config.customDomains);
  }

  async run(request: PrefetchRequest, emit: Emit, control: PrefetchControl): Promise<PrefetchSummary> {
    const totals = new Totals();
    totals.images = request.images.length;
    const send: Emit = (line) => {
      try {
        emit(line);
      } catch {
        // a listener's failure is its own: the prefetch goes on
      }
    };
    const current = new Map<string, { image: string; digest: string }>();
    const ticker = setInterval(() => send({ event: 'progress', current: [...current.values()].at(-1) ?? null, totals: totals.snapshot() }), PROGRESS_EVERY_MS);
    ticker.unref();
    const ok: string[] = [];
    const failed: ImageFailure[] = [];
    let stopped: string | null = null;
    send({ event: 'start', totals: totals.snapshot() });
    try {
      for (const image of request.images) {
        const halt = [control.abort, control.stopStarting].find((signal) => signal.aborted);
        if (halt) {
          stopped = reasonOf(halt);
          failed.push({ image, error: `not started: ${stopped}` });
          continue;
        }
        try {
          const done = await this.#image(image, request, { totals, send, current, control });
          ok.push(image);
          totals.imagesDone++;
          send({ event: 'image-done', image, ...done, totals: totals.snapshot() });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          failed.push({ image, error: message });
          totals.imagesDone++;
          send({ event: 'image-failed', image, error: message, totals: totals.snapshot() });
        }
      }
    } finally {
      clearInterval(ticker);
    }
    // Stopped during the last image, too: the summary says why the rest did not happen.
    const halted = [control.abort, control.stopStarting].find((signal) => signal.aborted);
    if (halted) stopped ??= reasonOf(halted);
    const summary: PrefetchSummary = { event: 'summary', ok, failed, stopped, totals: totals.snapshot() };
    send(summary);
    return summary;
  }

  async #image(image: string, request: PrefetchRequest, run: ImageRun): Promise<{ reference: string; manifests: number; blobs: number; bytes: number }> {
    const reference = parseImageReference(image);
    this.#checkProxied(reference);
    run.send({ event: 'image-started', image, reference: reference.canonical, totals: run.totals.snapshot() });
    const deadlineMs = this.options.imageDeadlineMs ?? DEFAULT_IMAGE_DEADLINE_MS;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`not done within ${Math.round(deadlineMs / 1000)} s, the deadline of one image`)), deadlineMs);
    const signal = AbortSignal.any([deadline.signal, run.control.abort]);
    const walk = new ImageWalk({
      client: this.#client,
      cache: this.options.cache,
      allowPush: this.options.config.allowPush,
      reference,
      platform: request.platform,
      referrers: request.referrers,
      signal,
      stopStarting: run.control.stopStarting,
      blobConcurrency: this.options.blobConcurrency ?? DEFAULT_BLOB_CONCURRENCY,
      on: {
        manifest: (digest, mediaType, bytes) => run.send({ event: 'manifest', image, digest, mediaType, bytes, totals: run.totals.snapshot() }),
        blobFound: () => void run.totals.blobs++,
        blobStarted: (digest, size) => {
          run.current.set(digest, { image, digest });
          run.send({ event: 'blob-started', image, digest, size, totals: run.totals.snapshot() });
        },
        bytes: (count) => void (run.totals.bytes += count),
        blobDone: (digest, bytes, cached) => {
          run.current.delete(digest);
          run.totals.blobsDone++;
          run.send({ event: 'blob-done', image, digest, bytes, cached, totals: run.totals.snapshot() });
        },
        blobEnded: (digest) => void run.current.delete(digest),
      },
    });
    try {
      const result = await walk.run();
      return { reference: reference.canonical, ...result };
    } catch (error) {
      // Whatever broke once the deadline or the stop came, the reason is that.
      if (signal.aborted) throw new Error(reasonOf(signal), { cause: error });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Only registries Layover proxies: the routes would refuse any other name, less clearly. */
  #checkProxied(reference: ImageReference): void {
    const parts = splitHostPort(reference.host);
    if (parts && this.#domains.has(parts.host)) return;
    if (!parts || !this.#intercepted.has(parts.host) || !this.#ports.allows(parts.host, parts.port)) {
      throw new Error(`${reference.registry} is not a registry Layover proxies (REGISTRIES names them)`);
    }
  }
}

interface ImageRun {
  readonly totals: Totals;
  readonly send: Emit;
  readonly current: Map<string, { image: string; digest: string }>;
  readonly control: PrefetchControl;
}

function reasonOf(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason ?? 'stopped');
}

