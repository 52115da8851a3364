import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Digest } from '../registry/digest.js';
import { DOCKER_PROXY_HOSTS } from '../proxy/docker-proxy-route.js';
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '../registry/media-types.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { PLACEHOLDER_TOKEN } from '../upstream/auth/upstream-auth.js';
import { readLimited } from '../upstream/read-limited.js';
import type { ImageReference } from './image-reference.js';
import { OWN_PULL_AUTHORIZATION, OWN_PULL_USER_AGENT } from './own-pull-credential.js';

/** An error answer is a few hundred bytes of JSON; more is read no further. */
const MAX_ERROR_BYTES = 64 * 1024;
/** What Docker asks for (schema 1 is long gone from registries and is not walked). */
const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.filter((type) => !type.startsWith('application/vnd.docker.distribution.manifest.v1')).join(', ');

/** A request of Layover's own that the registry routes refused or could not answer. */
export class PullError extends Error {
  override readonly name = 'PullError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface FetchedManifest {
  readonly body: Buffer;
  readonly mediaType: string;
  readonly digest: string | undefined;
}

type Where = Pick<ImageReference, 'host'> & { readonly repository: RepositoryName };

/**
 * Requests of Layover's own, run in process through the TLS listener's routes exactly as a client's
 * would be (light-my-request, no socket): credentials, the authorisation-aware cache, verification
 * and the one fill per digest all apply. Blobs are streamed and discarded, never held in memory.
 */
export class InProcessClient {
  constructor(
    private readonly https: FastifyInstance,
    /** With client authentication on, the hook must let Layover's own pulls in. */
    private readonly clientAuthOn: boolean,
  ) {}

  /** A manifest by tag or digest; null for 404 (when `missingIsNull`), a PullError for any other failure. */
  async manifest(where: Where, reference: string, signal: AbortSignal, missingIsNull = false): Promise<FetchedManifest | null> {
    const response = await this.#get(where, `manifests/${reference}`, MANIFEST_ACCEPT, signal);
    if (response.status === 404 && missingIsNull) {
      await discard(response.stream);
      return null;
    }
    const body = await this.#bodyOf(response, `manifest ${reference}`, MAX_MANIFEST_BYTES);
    const digest = response.headers['docker-content-digest'];
    return { body, mediaType: String(response.headers['content-type'] ?? ''), digest: typeof digest === 'string' ? digest : undefined };
  }

  /** The referrers API's index for `digest`; null when the registry has no referrers API (404). */
  async referrers(where: Where, digest: Digest, signal: AbortSignal): Promise<Buffer | null> {
    const response = await this.#get(where, `referrers/${digest}`, 'application/vnd.oci.image.index.v1+json', signal);
    if (response.status === 404) {
      await discard(response.stream);
      return null;
    }
    return this.#bodyOf(response, `referrers of ${digest}`, MAX_MANIFEST_BYTES);
  }

  /** True when a HEAD of the blob is answered 200 (a hit the caller already knew of, access checked). */
  async hasBlob(where: Where, digest: Digest, signal: AbortSignal): Promise<boolean> {
    const response = await this.#request('HEAD', where.host, `/v2/${where.repository}/blobs/${digest}`, undefined, signal);
    await discard(response.stream);
    return response.status === 200;
  }

  /**
   * GETs a blob and reads it to the end (at most `size` bytes, what its manifest says), discarding the bytes; resolves with how many were read, or
   * null for a redirect to the bucket (BLOB_REDIRECT=presigned), which is answered only for a blob the
   * store holds. A redirect to docker.proxy (REDIRECTS=rewrite: the registry sent its storage host)
   * is followed in process, as a client would: that route fetches, verifies and caches the blob.
   */
  async blob(where: Where, digest: Digest, size: number, signal: AbortSignal, onBytes: (bytes: number) => void): Promise<number | null> {
    let response = await this.#get(where, `blobs/${digest}`, undefined, signal);
    if (REDIRECT_STATUSES.has(response.status)) {
      const location = layoverLocation(response.headers.location);
      await discard(response.stream);
      if (!location) return null;
      response = await this.#request('GET', location.host, `${location.pathname}${location.search}`, undefined, signal);
    }
    if (response.status !== 200) return this.#refused(response, `blob ${digest}`);
    let bytes = 0;
    for await (const chunk of response.stream) {
      bytes += (chunk as Buffer).length;
      // More than the manifest said: the rest is not read (the fill's own verification settles the blob).
      if (bytes > size) {
        response.stream.destroy();
        throw new PullError(`blob ${digest}: more than the ${size} bytes its manifest says came`, 502);
      }
      onBytes((chunk as Buffer).length);
    }
    return bytes;
  }

  #get(where: Where, path: string, accept: string | undefined, signal: AbortSignal): Promise<Answer> {
    return this.#request('GET', where.host, `/v2/${where.repository}/${path}`, accept, signal);
  }

  async #request(method: 'GET' | 'HEAD', host: string, url: string, accept: string | undefined, signal: AbortSignal): Promise<Answer> {
    signal.throwIfAborted();
    const headers: Record<string, string> = { host, 'user-agent': OWN_PULL_USER_AGENT };
    if (accept) headers.accept = accept;
    // Without client authentication, Layover's placeholder token: "authorize with yours" (its
    // credential, else an anonymous token), as for a client that went through its token endpoint.
    headers.authorization = this.clientAuthOn ? OWN_PULL_AUTHORIZATION : `Bearer ${PLACEHOLDER_TOKEN}`;
    const injected = this.https.inject({ method, url, headers, payloadAsStream: true });
    const response = await answerOrAbort(injected, signal);
    const stream = response.stream();
    const abort = (): void => hangUp(response, abortReason(signal));
    signal.addEventListener('abort', abort, { once: true });
    stream.once('close', () => {
      signal.removeEventListener('abort', abort);
      // Left before the end (an error, a bound): the route must not wait for a reader that is gone.
      if (!response.raw.res.writableFinished) response.raw.res.destroy();
    });
    return { status: response.statusCode, headers: response.headers, stream };
  }

  /** The whole (bounded) body of a 200; a PullError naming the route's error for anything else. */
  async #bodyOf(response: Answer, what: string, limit: number): Promise<Buffer> {
    if (response.status !== 200) return this.#refused(response, what);
    const body = await readLimited(response.stream, limit);
    if (!body) throw new PullError(`${what} is larger than ${limit} bytes`, 502);
    return body;
  }

  async #refused(response: Answer, what: string): Promise<never> {
    const body = await readLimited(response.stream, MAX_ERROR_BYTES).catch(() => null);
    throw new PullError(`${what}: ${response.status} ${errorText(body)}`, response.status);
  }
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  stream: Readable;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A Location on Layover's own docker.proxy (a signed storage redirect), or null for any other place. */
function layoverLocation(location: unknown): URL | null {
  if (typeof location !== 'string') return null;
  try {
    const url = new URL(location);
    return url.protocol === 'https:' && DOCKER_PROXY_HOSTS.test(url.host) ? url : null;
  } catch {
    return null;
  }
}

type Injected = Awaited<ReturnType<FastifyInstance['inject']>>;

/** Closes what the route sends, as a client hanging up would: the route stops, a fill it started goes on. */
function hangUp(response: Injected, reason: Error): void {
  response.raw.res.destroy();
  const stream = response.stream();
  stream.on('error', () => undefined);
  stream.destroy(reason);
}

/**
 * The route's answer, or the signal's reason once it is aborted: a route waiting for an upstream that
 * does not answer must not hold the prefetch past its deadline. An answer that comes after that is hung up on.
 */
function answerOrAbort(injected: Promise<Injected>, signal: AbortSignal): Promise<Injected> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    injected
      .then((response) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) hangUp(response, abortReason(signal));
        else resolve(response);
      })
      .catch((error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      });
  });
}

const abortReason = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new Error('aborted'));

async function discard(stream: Readable): Promise<void> {
  for await (const _chunk of stream);
}

/** `CODE: message` of an OCI error body, or the start of whatever came instead. */
function errorText(body: Buffer | null): string {
  if (!body) return '(no answer)';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = parsed.errors?.[0];
    if (first && typeof first.code === 'string') return `${first.code}: ${String(first.message ?? '').slice(0, 300)}`;
  } catch {
    // not JSON: shown as it came, shortened
  }
  return JSON.stringify(body.toString('utf8').slice(0, 200));
}
