import { request, type Dispatcher } from 'undici';
import type { Digest } from '../registry/digest.js';
import { MANIFEST_MEDIA_TYPES } from '../registry/media-types.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { UpstreamAuthError } from '../upstream/auth/auth-error.js';
import { parseChallenges, preferredChallenge } from '../upstream/auth/challenge.js';
import type { UpstreamAuth } from '../upstream/auth/upstream-auth.js';

/** A cached object as upstream names it. */
export interface CachedObject {
  readonly kind: 'blob' | 'manifest';
  readonly digest: Digest;
}

/** Whose credentials a probe carries: none, Layover's configured ones, or the client's own Authorization. */
export type ProbeCredential = { readonly kind: 'anonymous' } | { readonly kind: 'layover' } | { readonly kind: 'client'; readonly authorization: string };

/** Upstream's answer to a probe: its status (and challenge), or that it could not be asked. */
export type ProbeResult = { readonly status: number; readonly challenge?: string | string[] } | { readonly unreachable: Error };

const ACCEPT_MANIFESTS = MANIFEST_MEDIA_TYPES.join(', ');

/**
 * Asks an upstream whether a credential may read one object of one repository:
 * a HEAD, which costs no Docker Hub pull and no body. A redirect counts as yes
 * (registries redirect blobs they would serve to storage).
 */
export class UpstreamProbe {
  readonly #dispatcher: Dispatcher;
  readonly #auth: UpstreamAuth;

  constructor(dispatcher: Dispatcher, auth: UpstreamAuth) {
    this.#dispatcher = dispatcher;
    this.#auth = auth;
  }

  async head(origin: string, name: RepositoryName, object: CachedObject, credential: ProbeCredential): Promise<ProbeResult> {
    try {
      switch (credential.kind) {
        case 'client':
          return await this.#head(origin, name, object, credential.authorization);
        case 'layover': {
          if (!this.#auth.concerns(origin)) return await this.#anonymous(origin, name, object);
          const grant = await this.#auth.authorize(origin, this.#auth.for(name), undefined);
          return await this.#head(origin, name, object, grant.header);
        }
        case 'anonymous':
          return await this.#anonymous(origin, name, object);
      }
    } catch (error) {
      if (error instanceof UpstreamAuthError && error.kind !== 'unreachable') return { status: error.status === 403 ? 403 : 401 };
      return { unreachable: error instanceof UpstreamAuthError && error.cause instanceof Error ? error.cause : (error as Error) };
    }
  }

  /** Without credentials: a Bearer challenge is answered with an anonymous token, as any client would. */
  async #anonymous(origin: string, name: RepositoryName, object: CachedObject): Promise<ProbeResult> {
    const first = await this.#head(origin, name, object, undefined);
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
    const second = await this.#head(origin, name, object, `Bearer ${token}`);
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
    const challenge = res.headers['www-authenticate'];
    return { status: res.statusCode, ...(challenge ? { challenge } : {}) };
  }
}
