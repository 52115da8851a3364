import { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_TOKEN_PATH } from '../client-auth/client-challenge.js';
import type { RequestLogFields } from '../log/request-log.js';
import { PEER_BLOB_PREFIX } from '../peers/peer-client.js';
import { DOCKER_PROXY_BLOB_PREFIX } from '../proxy/redirects/signed-url.js';
import { isClientTokenRequest, isRefusal, requestTargetOf } from '../proxy/request-routing.js';
import { parseRegistryPath, type RegistryRoute } from '../registry/registry-route.js';
import { TOKEN_ENDPOINT_PATH } from '../upstream/auth/upstream-auth.js';
import type { ServedSource } from './metrics.js';
import { OWN_PULL_USER_AGENT } from '../prefetch/own-pull-credential.js';

/** The `route` label: a fixed set, whatever path a client sends. */
export type RouteLabel = 'blob' | 'manifest' | 'tags' | 'referrers' | 'token' | 'redirect' | 'peer' | 'service' | 'admin' | 'metrics' | 'status' | 'prefetch' | 'other';
/** The `cache` label: hit, miss, stale, pass, denied, or '' where no cache decision was made. */
export type CacheLabel = 'hit' | 'miss' | 'stale' | 'pass' | 'denied' | '';

export interface RequestOutcome {
  readonly route: RouteLabel;
  readonly cache: CacheLabel;
  /** Body bytes of a successful answer; 0 for HEAD, 204, 304 and every error or redirect. */
  readonly bytes: number;
  readonly source: ServedSource | undefined;
}

/** The registry proxy's catch-all route (src/proxy/registry-proxy.ts): registry API paths are told apart by their shape. */
const REGISTRY_PROXY_ROUTE = '/*';
const SERVICE_ROUTES = new Set(['/ca.crt', '/healthz', '/livez', '/readyz']);
const CACHE_RESULTS: ReadonlySet<string> = new Set(['hit', 'miss', 'stale', 'pass', 'denied']);
/** What client authentication annotates when it refuses (src/client-auth/client-auth-hook.ts). */
const CLIENT_AUTH_REFUSALS: ReadonlySet<string> = new Set(['missing', 'rejected', 'unavailable', 'insufficient-scope']);

/**
 * What /metrics counts of a completed request, from its route and what the routes annotated for
 * its log line: the route (by the route that matched, never a client's path), the cache result
 * (a refusal by client authentication, the access check or routing is `denied`), and the body
 * bytes served with where they came from.
 */
export function requestOutcome(request: FastifyRequest, reply: FastifyReply, fields: RequestLogFields): RequestOutcome {
  const cache = cacheLabel(fields, reply.statusCode, request.url);
  // Layover's own pulls (prefetch) run in process, without a socket (no client can claim to be one): they serve no client a byte.
  if (!(request.raw.socket instanceof Socket) && request.headers['user-agent'] === OWN_PULL_USER_AGENT) return { route: 'prefetch', cache, bytes: 0, source: undefined };
  const route = routeLabel(request);
  const bytes = servedBytes(request.method, reply, fields);
  return { route, cache, bytes, source: cache === '' || cache === 'denied' || bytes === 0 ? undefined : servedSource(cache, fields) };
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

function routeLabel(request: FastifyRequest): RouteLabel {
  const matched = request.routeOptions.url;
  if (matched === undefined) return 'other';
  if (matched === REGISTRY_PROXY_ROUTE) return registryRouteLabel(request);
  if (matched.startsWith(DOCKER_PROXY_BLOB_PREFIX)) return 'redirect';
  if (matched.startsWith(PEER_BLOB_PREFIX)) return 'peer';
  if (SERVICE_ROUTES.has(matched) || matched.startsWith('/setup/')) return 'service';
  if (matched === '/metrics') return 'metrics';
  if (matched === '/admin' || matched.startsWith('/admin/')) return 'admin';
  if (matched === '/' || matched.startsWith('/status')) return 'status';
  return 'other';
}

/**
 * By the path's shape. A request routed to an upstream takes the kind of its routing decision
 * (src/proxy/request-target.ts), so its path is not parsed a second time; a refused one is parsed here.
 */
function registryRouteLabel(request: FastifyRequest): RouteLabel {
  const path = pathOf(request.url);
  if (path === CLIENT_TOKEN_PATH || path === TOKEN_ENDPOINT_PATH || path.startsWith(`${TOKEN_ENDPOINT_PATH}/`)) return 'token';
  const routing = requestTargetOf(request);
  if (routing && isClientTokenRequest(routing)) return 'other';
  const kind = routing && !isRefusal(routing) ? (routing.routeError ? undefined : routing.route?.kind) : parsedKind(path);
  return kind === 'blob' || kind === 'manifest' || kind === 'tags' || kind === 'referrers' ? kind : 'other';
}

function parsedKind(path: string): RegistryRoute['kind'] | undefined {
  try {
    return parseRegistryPath(path)?.kind;
  } catch {
    return undefined;
  }
}

function cacheLabel(fields: RequestLogFields, status: number, url: string): CacheLabel {
  const refused =
    fields.cache === 'denied' ||
    fields.refused !== undefined ||
    fields.peer === 'refused' ||
    fields.redirect === 'refused' ||
    (typeof fields.clientAuth === 'string' && CLIENT_AUTH_REFUSALS.has(fields.clientAuth));
  // A registry's 401 to the `/v2/` ping is how clients learn to authenticate, not a refusal.
  const path = pathOf(url);
  const ping = path === '/v2/' || path === '/v2';
  if (refused || ((status === 401 || status === 403) && !ping)) return 'denied';
  return typeof fields.cache === 'string' && CACHE_RESULTS.has(fields.cache) ? (fields.cache as CacheLabel) : '';
}

function servedBytes(method: string, reply: FastifyReply, fields: RequestLogFields): number {
  const status = reply.statusCode;
  if (method === 'HEAD' || status < 200 || status >= 300 || status === 204) return 0;
  if (typeof fields.bytes === 'number') return fields.bytes;
  const length = Number(reply.getHeader('content-length'));
  return Number.isSafeInteger(length) && length > 0 ? length : 0;
}

/**
 * A hit (or a stale answer) and a client that joined another's download got bytes the upstream did
 * not send again; a fill relayed from another replica (`peer` names it) came from that replica.
 */
function servedSource(cache: CacheLabel, fields: RequestLogFields): ServedSource {
  if (typeof fields.peer === 'string' && fields.peer.includes(':')) return 'peer';
  if (cache === 'hit' || cache === 'stale' || fields.joined === true) return 'cache';
  return 'upstream';
}
