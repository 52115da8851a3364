import { request, type Dispatcher } from 'undici';
import { type Digest, digestAlgorithm, digestOf } from '../registry/digest.js';
import { MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES } from '../registry/media-types.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { UpstreamAuthError } from '../upstream/auth/auth-error.js';
import { parseChallenges, preferredChallenge } from '../upstream/auth/challenge.js';
import type { UpstreamAuth } from '../upstream/auth/upstream-auth.js';
import { readLimited, WHOLE_BODY_DEADLINE_MS } from '../upstream/read-limited.js';
import { type HeldBytesSample, type SampledAnswer, sampleRange, showsSample } from './held-sample.js';

/** A cached object as upstream names it. */
export interface CachedObject {
  readonly kind: 'blob' | 'manifest';
  readonly digest: Digest;
}

/** Whose credentials a probe carries: none, Layover's configured ones, or the client's own Authorization. */
export type ProbeCredential = { readonly kind: 'anonymous' } | { readonly kind: 'layover' } | { readonly kind: 'client'; readonly authorization: string };

/**
 * Upstream's answer to a probe: its status (and challenge), or that it could not be asked. Asked to
 * show the bytes of a digest (proveHeld), upstream `shown` them, or was `refuted`: it sent others (a 404 then).
 */
export type ProbeResult = { readonly status: number; readonly challenge?: string | string[]; readonly shown?: true; readonly refuted?: true } | { readonly unreachable: Error };

/** How an upstream shows a cached blob's bytes: a sample of the cache's, and its storage redirects followed. */
export interface HeldBytes {
  sample(digest: Digest): Promise<HeldBytesSample>;
  /**
   * A storage URL the upstream at `origin` redirected to, fetched with `range` (src/proxy/redirects/);
   * null when it shows nothing (refused by the address policy, another status, too many hops).
   * Rejects when the storage host cannot be reached.
   */
  fetchStorage(target: URL, origin: string, range: string): Promise<SampledAnswer | null>;
}

const ACCEPT_MANIFESTS = MANIFEST_MEDIA_TYPES.join(', ');
const REFUTED: ProbeResult = { status: 404, refuted: true };
/** Upstream showed nothing to compare (a redirect without a target, a storage host refusing): no bytes, no guess either. */
const NOT_SHOWN: ProbeResult = { status: 404 };
const SHOWN: ProbeResult = { status: 200, shown: true };

/**
 * Asks an upstream whether a credential may read one object of one repository:
 * a HEAD, which costs no Docker Hub pull and no body. A redirect counts as yes
 * (registries redirect blobs they would serve to storage). An upstream that never gave
 * Layover the object is asked to show it instead (proveHeld).
 */
export class UpstreamProbe {
  readonly #dispatcher: Dispatcher;
  readonly #auth: UpstreamAuth;
  readonly #held: HeldBytes;
  readonly #bodyDeadlineMs: number;

  /** `bodyDeadlineMs`: how long a body read to prove a digest may take, first byte to last (tests shorten it). */
  constructor(dispatcher: Dispatcher, auth: UpstreamAuth, held: HeldBytes, bodyDeadlineMs = WHOLE_BODY_DEADLINE_MS) {
    this.#dispatcher = dispatcher;
    this.#auth = auth;
    this.#held = held;
    this.#bodyDeadlineMs = bodyDeadlineMs;
  }

  head(origin: string, name: RepositoryName, object: CachedObject, credential: ProbeCredential): Promise<ProbeResult> {
    return this.#send(origin, name, credential, (authorization) => this.#head(origin, name, object, authorization));
  }

  /**
   * Like head, but the upstream must show the bytes: a GET of a random window of the cached blob
   * (its storage redirect followed), or of the whole manifest, compared with what the cache holds:
   * `shown`; other bytes or another size are a 404, `refuted`; nothing to compare (a redirected
   * manifest, a storage host refusing) a plain 404.
   */
  proveHeld(origin: string, name: RepositoryName, object: CachedObject, credential: ProbeCredential): Promise<ProbeResult> {
    return this.#send(origin, name, credential, (authorization) =>
      object.kind === 'manifest' ? this.#showManifest(origin, name, object.digest, authorization) : this.#showBlob(origin, name, object, authorization),
    );
  }

  /** `send` with the credential's Authorization (none, Layover's grant, the client's own). */
  async #send(origin: string, name: RepositoryName, credential: ProbeCredential, send: (authorization: string | undefined) => Promise<ProbeResult>): Promise<ProbeResult> {
    try {
      switch (credential.kind) {
        case 'client':
          return await send(credential.authorization);
        case 'layover': {
          if (!this.#auth.concerns(origin)) return await this.#anonymous(origin, name, send);
          const grant = await this.#auth.authorize(origin, this.#auth.for(name), undefined);
          return await send(grant.header);
        }
        case 'anonymous':
          return await this.#anonymous(origin, name, send);
      }
    } catch (error) {
      if (error instanceof UpstreamAuthError && error.kind !== 'unreachable') return { status: error.status === 403 ? 403 : 401 };
      return { unreachable: error instanceof UpstreamAuthError && error.cause instanceof Error ? error.cause : (error as Error) };
    }
  }

  /** Without credentials: a Bearer challenge is answered with an anonymous token, as any client would. */
  async #anonymous(origin: string, name: RepositoryName, send: (authorization: string | undefined) => Promise<ProbeResult>): Promise<ProbeResult> {
    const first = await send(undefined);
    if (!('status' in first) || first.status !== 401) return first;
    const challenge = preferredChallenge(parseChallenges(first.challenge));
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) return first;
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      return first;
    }
    // A realm Layover may not reach (refused: a 401 below) is never asked.
    const token = await this.#auth.anonymousToken(origin, realm, challenge.params.service, `repository:${name}:pull`);
    const second = await send(`Bearer ${token}`);
    // The challenge a client without credentials should see is the first one, not the token's refusal.
    return 'status' in second && second.status === 401 ? { status: 401, ...(first.challenge ? { challenge: first.challenge } : {}) } : second;
  }

  async #head(origin: string, name: RepositoryName, object: CachedObject, authorization: string | undefined): Promise<ProbeResult> {
    const path = `/v2/${name}/${object.kind === 'blob' ? 'blobs' : 'manifests'}/${object.digest}`;
    const headers: Record<string, string> = { 'user-agent': 'layover' };
    if (object.kind === 'manifest') headers.accept = ACCEPT_MANIFESTS;
    if (authorization) headers.authorization = authorization;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${origin}${path}`, { dispatcher: this.#dispatcher, method: 'HEAD', headers });
    } catch (error) {
      return { unreachable: error as Error };
    }
    await res.body.dump().catch(() => undefined);
    return statusOf(res);
  }

  async #showBlob(origin: string, name: RepositoryName, object: CachedObject, authorization: string | undefined): Promise<ProbeResult> {
    const held = await this.#held.sample(object.digest);
    if ('unreadable' in held) return { unreachable: held.unreadable };
    // No bytes here (it left the cache, or another replica of a fleet fetches it from this very
    // registry: src/proxy/peer-fill.ts): the HEAD answers, as for any digest not cached. The empty
    // blob's bytes are no secret.
    if ('absent' in held || held.sample.size === 0) return this.#head(origin, name, object, authorization);
    const sample = held.sample;
    const url = `${origin}/v2/${name}/blobs/${object.digest}`;
    const range = sampleRange(sample);
    const headers: Record<string, string> = { 'user-agent': 'layover', 'accept-encoding': 'identity', range };
    if (authorization) headers.authorization = authorization;
    try {
      const res = await request(url, { dispatcher: this.#dispatcher, method: 'GET', headers });
      let answer: SampledAnswer | null = { statusCode: res.statusCode, headers: res.headers, body: res.body as unknown as SampledAnswer['body'] };
      const location = res.headers.location;
      if (REDIRECTS.has(res.statusCode) && typeof location === 'string') {
        await res.body.dump().catch(() => undefined);
        const target = URL.parse(location, url);
        if (!target) return NOT_SHOWN;
        answer = await this.#held.fetchStorage(target, origin, range);
        if (!answer) return NOT_SHOWN;
      } else if (res.statusCode !== 200 && res.statusCode !== 206) {
        await res.body.dump().catch(() => undefined);
        return res.statusCode < 400 ? NOT_SHOWN : statusOf(res);
      }
      return (await showsSample(answer, sample, this.#bodyDeadlineMs)) ? SHOWN : REFUTED;
    } catch (error) {
      return { unreachable: error as Error };
    }
  }

  async #showManifest(origin: string, name: RepositoryName, digest: Digest, authorization: string | undefined): Promise<ProbeResult> {
    const headers: Record<string, string> = { 'user-agent': 'layover', accept: ACCEPT_MANIFESTS };
    if (authorization) headers.authorization = authorization;
    try {
      const res = await request(`${origin}/v2/${name}/manifests/${digest}`, { dispatcher: this.#dispatcher, method: 'GET', headers });
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => undefined);
        return res.statusCode < 400 ? NOT_SHOWN : statusOf(res);
      }
      const bytes = await readLimited(res.body as unknown as SampledAnswer['body'], MAX_MANIFEST_BYTES, this.#bodyDeadlineMs);
      return bytes !== null && digestOf(bytes, digestAlgorithm(digest)) === digest ? SHOWN : REFUTED;
    } catch (error) {
      return { unreachable: error as Error };
    }
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function statusOf(res: Dispatcher.ResponseData): ProbeResult {
  const challenge = res.headers['www-authenticate'];
  return { status: res.statusCode, ...(challenge ? { challenge } : {}) };
}
