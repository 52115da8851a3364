import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/** Basic is what `docker login`, skopeo `--creds` and podman's authfile answer without a token service. */
export const BASIC_CHALLENGE = 'Basic realm="Layover"';

/** The path of Layover's token service on each of its own names (not part of the registry API, /v2/…). */
export const CLIENT_TOKEN_PATH = '/token';

/** Where clients of a registry's own name (DNS hijack, HTTPS_PROXY) get tokens: docker.proxy, which all of them resolve to Layover. */
export const TOKEN_REALM = `https://${DOCKER_PROXY_HOST}${CLIENT_TOKEN_PATH}`;

/**
 * Layover's token service as one client reaches it (CLIENT_AUTH_CHALLENGE=bearer): the `realm` and
 * `service` of its Bearer challenges. `service` is also the audience a token of Layover's must have
 * on that client's requests, so a token serves the name it was asked for and no other.
 */
export interface ClientTokenService {
  readonly realm: string;
  readonly service: string;
}

/**
 * The token service for a request, by how it named its registry (src/proxy/request-target.ts):
 * - `host` (a registry's own name): realm docker.proxy, service the registry.
 * - `domain` (a custom domain): realm and service the domain itself, which is all such a client
 *   may resolve and trust (its certificate may be the operator's, not Layover's CA).
 * - `ns` and `path` (mirror clients, on one of Layover's own names or addresses): realm and service
 *   the name the client used, as it is the registry from the client's point of view; containerd's
 *   `ns` rides along in the realm so the token service knows which registry its scopes name.
 *   Whichever registry a mirror request names, the access policy judges it (as for every request);
 *   the token only says who the client is, at this name.
 *
 * `ownName` is the Host the client used, normalised (`host[:port]`, no :443).
 */
export function clientTokenService(mode: 'host' | 'ns' | 'path' | 'domain', registry: string, ownName: string, ns?: string): ClientTokenService {
  switch (mode) {
    case 'host':
      return { realm: TOKEN_REALM, service: registry };
    case 'domain':
      return { realm: `https://${ownName}${CLIENT_TOKEN_PATH}`, service: registry };
    case 'ns':
      return { realm: `https://${ownName}${CLIENT_TOKEN_PATH}?ns=${encodeURIComponent(ns ?? registry)}`, service: ownName };
    case 'path':
      return { realm: `https://${ownName}${CLIENT_TOKEN_PATH}`, service: ownName };
  }
}

/** What a 401 tells the client to come back with: an action on a repository, or nothing in particular (the ping). */
export interface ChallengeScope {
  /** In the client's names (a mirror path's registry prefix included). */
  repository: string;
  actions: readonly ('pull' | 'push')[];
}

// Registry and repository names cannot hold quotes or backslashes; this keeps it so whatever reaches here.
const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;

/**
 * The Bearer challenge of the distribution token spec, pointing at Layover's own token service:
 * `realm` and `service` as for the request's client (clientTokenService), `scope` what it was
 * trying to do.
 */
export function bearerChallenge(tokenService: ClientTokenService, scope: ChallengeScope | null): string {
  const parts = [`realm=${quoted(tokenService.realm)}`, `service=${quoted(tokenService.service)}`];
  if (scope) parts.push(`scope=${quoted(`repository:${scope.repository}:${scope.actions.join(',')}`)}`);
  return `Bearer ${parts.join(',')}`;
}
