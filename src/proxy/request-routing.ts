import type { FastifyRequest } from 'fastify';
import type { ClientTokenService } from '../client-auth/client-challenge.js';
import type { OciError } from '../registry/oci-errors.js';
import type { RegistryRoute } from '../registry/registry-route.js';
import type { RepositoryName } from '../registry/repository-name.js';
import type { UpstreamTarget } from './upstream-target.js';

/**
 * How a request names its registry:
 * - `host`: the Host is an intercepted registry (DNS hijack, HTTPS_PROXY); the path goes upstream unchanged.
 * - `ns`: containerd's mirror form, `?ns=<registry>` on a request to Layover's own name or address.
 * - `path`: podman's and CRI-O's mirror form, `/v2/<registry>/<repository>/…` on Layover's own name.
 * - `domain`: a custom domain of the configuration, mapped to an upstream registry and prefix.
 */
export type TargetMode = 'host' | 'ns' | 'path' | 'domain';

/** Where one request goes, decided once (see routeRequest) and used by every route and hook. */
export interface RequestTarget {
  readonly mode: TargetMode;
  /** The registry the access policy judges: the one the client named (for a custom domain, the domain). */
  readonly registry: string;
  /** The repository the access policy judges: the client's name, less a mirror's registry prefix. */
  readonly repository: RepositoryName | undefined;
  /** The upstream registry, origin and rewriting; null for a mirror's bare `/v2/` ping, which Layover answers. */
  readonly upstream: UpstreamTarget | null;
  /** The API route in UPSTREAM names (what the cache and src/access see); null: not a registry API path. */
  readonly route: RegistryRoute | null;
  /** A malformed API path on a registry name: answered after client authentication, as before routing existed. */
  readonly routeError?: OciError;
  /** A request for Layover's token endpoint (`/_layover/token…`). */
  readonly token: boolean;
  /** The repository as the client named it (a mirror path's registry prefix included): the scope of challenges. */
  readonly clientRepository: string | undefined;
  /** Layover's token service for this client (CLIENT_AUTH_CHALLENGE=bearer): challenges, and the audience its tokens need here. */
  readonly clientToken: ClientTokenService;
}

/** A request that names nothing Layover proxies: answered with `refusal`, touching nothing. */
export interface RouteRefusal {
  readonly refusal: OciError;
}

/**
 * Which of Layover's own names a `/token` request reached: a custom domain, or a name or address
 * mirror clients use (docker.proxy among them), with containerd's `ns` (an intercepted registry).
 */
export type TokenSite = { readonly kind: 'domain'; readonly name: string } | { readonly kind: 'own'; readonly name: string; readonly ns: string | null; readonly dockerProxy: boolean };

/**
 * `/token` on one of Layover's own names: its token service for its clients
 * (src/client-auth/token-service/), never an upstream's. On a registry's own name `/token` is
 * that registry's (auth.docker.io serves its tokens there) and goes upstream like any path.
 */
export interface ClientTokenRequest {
  readonly tokenSite: TokenSite;
}

export type Routing = RequestTarget | RouteRefusal | ClientTokenRequest;

/**
 * Each request's routing, as registerRequestTarget's onRequest hook decided it (routeRequest in
 * ./request-target.ts). The decision's types and this store live apart from the routing code, so that
 * the request log and metrics read a decision without importing the routes.
 */
const routings = new WeakMap<FastifyRequest, Routing>();

export function setRequestRouting(request: FastifyRequest, routing: Routing): void {
  routings.set(request, routing);
}

/** The routing of a request, as the onRequest hook of registerRequestTarget decided it. */
export function requestTargetOf(request: FastifyRequest): Routing | undefined {
  return routings.get(request);
}

export const isRefusal = (routing: Routing): routing is RouteRefusal => 'refusal' in routing;
export const isClientTokenRequest = (routing: Routing): routing is ClientTokenRequest => 'tokenSite' in routing;
