import type { FastifyInstance } from 'fastify';
import { CLIENT_TOKEN_PATH, clientTokenService } from '../client-auth/client-challenge.js';
import { annotateRequestLog } from '../log/request-log.js';
import type { CustomDomainRoutes, DomainRoute } from '../registry/custom-domain-routes.js';
import type { HostnameSet } from '../registry/hostname.js';
import { mapRepositoryScopes, NameMapping } from '../registry/name-mapping.js';
import { OciError } from '../registry/oci-errors.js';
import { parseRegistryPath, type RegistryRoute } from '../registry/registry-route.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';
import { TOKEN_ENDPOINT_PATH } from '../upstream/auth/upstream-auth.js';
import { isClientTokenRequest, isRefusal, type RequestTarget, type RouteRefusal, type Routing, setRequestRouting } from './request-routing.js';
import { type RegistryPorts, registryUpstream, splitHostPort, upstreamTarget, type UpstreamRewrite, type UpstreamTarget } from './upstream-target.js';


export interface RoutingTables {
  readonly intercepted: HostnameSet;
  readonly domains: CustomDomainRoutes;
  /**
   * The ports each registry is reached at (REGISTRIES); a Host, `ns` or mirror path naming another
   * is refused before any connection. Without it every port is (as before the table existed).
   */
  readonly ports?: RegistryPorts;
}

const nameUnknown = (message: string): RouteRefusal => ({ refusal: new OciError('NAME_UNKNOWN', message) });
const MIRROR_HINT = 'name an intercepted registry with ?ns=<registry> (containerd) or /v2/<registry>/<repository>/… (podman, CRI-O)';

/**
 * The one routing step of a request (no I/O): from its Host, the `ns` query parameter, a mirror
 * path prefix and the custom domains, which upstream it goes to, under which names, and what the
 * access policy judges. Only intercepted registries are ever reached (`ns` and path prefixes must
 * name one, never docker.proxy or a custom domain), so Layover stays no open proxy.
 */
export function routeRequest(hostHeader: string | undefined, url: string, tables: RoutingTables): Routing {
  const queryAt = url.indexOf('?');
  const path = queryAt < 0 ? url : url.slice(0, queryAt);
  const query = queryAt < 0 ? '' : url.slice(queryAt + 1);
  const host = splitHostPort(hostHeader);
  if (host && tables.domains.has(host.host)) {
    if (path === CLIENT_TOKEN_PATH) return { tokenSite: { kind: 'domain', name: host.host } };
    return domainTarget(hostHeader!, host.host, path, query, tables.domains);
  }
  const direct = upstreamTarget(hostHeader, tables.intercepted);
  if (direct && host && tables.ports && !tables.ports.allows(host.host, host.port)) {
    // The same answer whatever that port's state: nothing is dialled.
    return nameUnknown(`${host.host}:${host.port ?? 443} is not a registry Layover proxies (REGISTRIES names the ports of each registry)`);
  }
  if (direct) return hostTarget(direct, path);
  return mirrorTarget(hostHeader, path, query, tables);
}

function parseRoute(path: string): { route: RegistryRoute | null } | { error: OciError } {
  try {
    return { route: parseRegistryPath(path) };
  } catch (error) {
    if (error instanceof OciError) return { error };
    throw error;
  }
}

const nameOf = (route: RegistryRoute | null): RepositoryName | undefined => (route && 'name' in route ? route.name : undefined);

/**
 * A name of Layover's as clients write it (a Host, a token request's `service`): `host[:port]`,
 * lower case, without :443, or an IPv6 literal in brackets; null when it is neither.
 */
export function parseOwnName(value: string | undefined): string | null {
  const parts = splitHostPort(value);
  if (parts) return parts.port === null ? parts.host : `${parts.host}:${parts.port}`;
  const v6 = /^(\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i.exec(value ?? '');
  if (!v6) return null;
  const port = v6[2] === undefined ? 443 : Number(v6[2]);
  if (port < 1 || port > 65535) return null;
  return port === 443 ? v6[1]!.toLowerCase() : `${v6[1]!.toLowerCase()}:${port}`;
}

/** The name a client reached Layover by; docker.proxy, Layover's default name, when its Host is none. */
const ownName = (hostHeader: string | undefined): string => parseOwnName(hostHeader) ?? DOCKER_PROXY_HOST;

function hostTarget(upstream: UpstreamTarget, path: string): RequestTarget {
  const parsed = parseRoute(path);
  const route = 'route' in parsed ? parsed.route : null;
  return {
    mode: 'host',
    registry: upstream.registry,
    repository: nameOf(route),
    upstream,
    route,
    ...('error' in parsed ? { routeError: parsed.error } : {}),
    token: path === TOKEN_ENDPOINT_PATH,
    clientRepository: nameOf(route),
    clientToken: clientTokenService('host', upstream.registry, upstream.registry),
  };
}

/** An intercepted registry named by `ns` or a path prefix: never docker.proxy, never a custom domain. */
export function mirrorUpstream(name: string, tables: RoutingTables): UpstreamTarget | null {
  const parts = splitHostPort(name);
  if (!parts || tables.domains.has(parts.host)) return null;
  return upstreamTarget(name, tables.intercepted, tables.ports);
}

/** The query without containerd's `ns` parameter(s), otherwise byte for byte (upload states are signed). */
function withoutNs(query: string): string {
  return query
    .split('&')
    .filter((part) => part !== '' && decodeQueryName(part) !== 'ns')
    .join('&');
}

function decodeQueryName(part: string): string {
  const name = part.split('=', 1)[0]!;
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * A cross-repository mount (`POST …/blobs/uploads/?mount=<digest>&from=<name>`) names a second
 * repository in the query: renamed like the path's, or, when it has no name upstream, the mount is
 * dropped and the request starts a plain upload (which a registry does for a failed mount anyway).
 */
function withMountSource(query: string, toUpstream: (name: string) => string | null): string {
  const parts = query.split('&').filter((part) => part !== '');
  const from = parts.find((part) => decodeQueryName(part) === 'from');
  if (from === undefined) return query;
  let name: string | null = null;
  try {
    name = toUpstream(decodeURIComponent(from.slice(from.indexOf('=') + 1).replace(/\+/g, ' ')));
  } catch {
    // a malformed escape names nothing
  }
  return parts
    .flatMap((part) => {
      const key = decodeQueryName(part);
      if (key === 'from') return name ? [`from=${encodeURIComponent(name)}`] : [];
      return key === 'mount' && !name ? [] : [part];
    })
    .join('&');
}

/** The path sent upstream: the client's path with its repository name replaced by the upstream's. */
function upstreamPath(path: string, clientName: string, upstreamName: string): string {
  return `/v2/${upstreamName}${path.slice(`/v2/${clientName}`.length)}`;
}

/** A route with its repository name replaced. */
function withName(route: RegistryRoute, name: RepositoryName): RegistryRoute {
  return 'name' in route ? { ...route, name } : route;
}

function mirrorTarget(hostHeader: string | undefined, path: string, query: string, tables: RoutingTables): Routing {
  const own = ownName(hostHeader);
  // The name as parsed: a request without a Host (HTTP/1.0 sends an empty one) is docker.proxy's.
  const base = `https://${own}`;
  const ns = new URLSearchParams(query).getAll('ns');
  if (ns.length > 1) return nameUnknown('more than one ns parameter');
  const dockerProxy = splitHostPort(own)?.host === DOCKER_PROXY_HOST;
  if (path === CLIENT_TOKEN_PATH && ns.length === 0) return { tokenSite: { kind: 'own', name: own, ns: null, dockerProxy } };
  if (ns.length === 1) {
    const upstream = mirrorUpstream(ns[0]!, tables);
    if (!upstream) return nameUnknown(`${ns[0]!.slice(0, 300)} is not a registry Layover proxies`);
    if (path === CLIENT_TOKEN_PATH) return { tokenSite: { kind: 'own', name: own, ns: upstream.registry, dockerProxy } };
    const clientQuery = `ns=${encodeURIComponent(ns[0]!)}`;
    const parsed = parseRoute(path);
    if ('error' in parsed) return { refusal: parsed.error };
    const rewrite: UpstreamRewrite = {
      path,
      query: withoutNs(query),
      names: NameMapping.IDENTITY,
      scopesToUpstream: (scope) => scope,
      tokenRealm: `${base}${TOKEN_ENDPOINT_PATH}?${clientQuery}`,
      alwaysManaged: false,
      clientQuery,
      followRedirects: true,
    };
    const repository = nameOf(parsed.route);
    const clientToken = clientTokenService('ns', upstream.registry, own, ns[0]);
    return { mode: 'ns', registry: upstream.registry, repository, upstream: { ...upstream, rewrite }, route: parsed.route, token: path === TOKEN_ENDPOINT_PATH, clientRepository: repository, clientToken };
  }

  const clientToken = clientTokenService('path', DOCKER_PROXY_HOST, own);
  if (path === '/v2/' || path === '/v2') return { mode: 'path', registry: DOCKER_PROXY_HOST, repository: undefined, upstream: null, route: { kind: 'ping' }, token: false, clientRepository: undefined, clientToken };
  // The realm handed out for a path-prefixed request: /_layover/token/<registry>.
  if (path.startsWith(`${TOKEN_ENDPOINT_PATH}/`)) {
    const registry = path.slice(TOKEN_ENDPOINT_PATH.length + 1);
    const upstream = registry.includes('.') ? mirrorUpstream(registry, tables) : null;
    if (!upstream) return nameUnknown(`${registry.slice(0, 300)} is not a registry Layover proxies`);
    return { mode: 'path', registry: upstream.registry, repository: undefined, upstream: { ...upstream, rewrite: pathRewrite(base, registry, '', query) }, route: null, token: true, clientRepository: undefined, clientToken };
  }
  const parsed = parseRoute(path);
  if ('error' in parsed) return { refusal: parsed.error };
  const name = nameOf(parsed.route);
  if (!parsed.route || !name) return nameUnknown(`${own} is Layover itself: ${MIRROR_HINT}`);
  const registry = name.split('/', 1)[0]!;
  // Registry names have a dot (or a port, which no repository name can carry); `library/alpine` names none.
  const upstream = registry.includes('.') ? mirrorUpstream(registry, tables) : null;
  if (!upstream) return nameUnknown(registry.includes('.') ? `${registry} is not a registry Layover proxies` : `${name} names no registry: ${MIRROR_HINT}`);
  const mapping = new NameMapping(registry, '');
  const upstreamName = mapping.toUpstream(name);
  if (!upstreamName) return nameUnknown(`${name} names a registry but no repository in it`);
  const rewrite = pathRewrite(base, registry, upstreamPath(path, name, upstreamName), withMountSource(query, (from) => mapping.toUpstream(from)));
  return { mode: 'path', registry: upstream.registry, repository: upstreamName, upstream: { ...upstream, rewrite }, route: withName(parsed.route, upstreamName), token: false, clientRepository: name, clientToken };
}

function pathRewrite(base: string, registry: string, path: string, query: string): UpstreamRewrite {
  const names = new NameMapping(registry, '');
  return {
    path,
    query,
    names,
    scopesToUpstream: (scope) => names.scopesToUpstream(scope),
    tokenRealm: `${base}${TOKEN_ENDPOINT_PATH}/${registry}`,
    alwaysManaged: true,
    clientQuery: '',
    followRedirects: true,
  };
}

function domainTarget(hostHeader: string, domain: string, path: string, query: string, domains: CustomDomainRoutes): Routing {
  const base = `https://${hostHeader}`;
  const clientToken = clientTokenService('domain', domain, ownName(hostHeader));
  const rewriteFor = (route: DomainRoute, upstreamPathValue: string, mountSource?: (name: string) => string | null): UpstreamTarget | null => {
    const upstream = registryUpstream(route.entry.registry);
    if (!upstream) return null;
    const prefix = route.entry.pathPrefix;
    const scopesToUpstream = (scope: string): string =>
      mapRepositoryScopes(scope, (name) => {
        const owner = domains.forRepository(domain, name);
        return owner && registryUpstream(owner.entry.registry)?.origin === upstream.origin ? owner.mapping.toUpstream(name) : null;
      });
    const rewrite: UpstreamRewrite = {
      path: upstreamPathValue,
      query: mountSource ? withMountSource(query, mountSource) : query,
      names: route.mapping,
      scopesToUpstream,
      tokenRealm: `${base}${TOKEN_ENDPOINT_PATH}${prefix ? `/${prefix}` : ''}`,
      alwaysManaged: true,
      clientQuery: '',
      followRedirects: true,
    };
    return { ...upstream, rewrite };
  };
  const unknownHere = (what: string): RouteRefusal => nameUnknown(`${what.slice(0, 300)} is not a repository of ${domain}`);

  if (path === TOKEN_ENDPOINT_PATH || path.startsWith(`${TOKEN_ENDPOINT_PATH}/`)) {
    const prefix = path.slice(TOKEN_ENDPOINT_PATH.length + 1);
    const route = domains.byPrefix(domain, prefix);
    const upstream = route && rewriteFor(route, '');
    if (!upstream) return unknownHere(prefix || '/');
    return { mode: 'domain', registry: domain, repository: undefined, upstream, route: null, token: true, clientRepository: undefined, clientToken };
  }
  const parsed = parseRoute(path);
  if ('error' in parsed) {
    const fallback = domains.defaultFor(domain);
    const upstream = fallback && rewriteFor(fallback, path);
    if (!upstream) return { refusal: parsed.error };
    return { mode: 'domain', registry: domain, repository: undefined, upstream, route: null, routeError: parsed.error, token: false, clientRepository: undefined, clientToken };
  }
  const route = parsed.route;
  if (!route) return { refusal: new OciError('NOT_FOUND', `${domain} serves the registry API (/v2/) only`) };
  if (route.kind === 'catalog') return { refusal: new OciError('UNSUPPORTED', `${domain} does not list its repositories`) };
  if (route.kind === 'ping') {
    const fallback = domains.defaultFor(domain);
    const upstream = fallback && rewriteFor(fallback, path);
    if (!upstream) return unknownHere('/v2/');
    return { mode: 'domain', registry: domain, repository: undefined, upstream, route, token: false, clientRepository: undefined, clientToken };
  }
  const name = route.name;
  const entry = domains.forRepository(domain, name);
  if (!entry) return unknownHere(name);
  const upstreamName = entry.mapping.toUpstream(name);
  if (!upstreamName) return { refusal: new OciError('NAME_INVALID', `${name} is too long once mapped to ${entry.entry.registry}`) };
  const upstream = rewriteFor(entry, upstreamPath(path, name, upstreamName), (from) => {
    const owner = domains.forRepository(domain, from);
    return owner?.entry.registry === entry.entry.registry ? owner.mapping.toUpstream(from) : null;
  });
  if (!upstream) return unknownHere(name);
  return { mode: 'domain', registry: domain, repository: name, upstream, route: withName(route, upstreamName), token: false, clientRepository: name, clientToken };
}

/**
 * Decides every request's target once, before client authentication and the routes: both read
 * it with requestTargetOf instead of deriving their own from the Host.
 */
export function registerRequestTarget(app: FastifyInstance, tables: RoutingTables): void {
  // A callback hook: an async one costs every request a promise and a turn of the microtask queue.
  app.addHook('onRequest', (request, _reply, done) => {
    const routing = routeRequest(request.host, request.url, tables);
    setRequestRouting(request, routing);
    if (!isRefusal(routing) && !isClientTokenRequest(routing) && routing.mode !== 'host') annotateRequestLog(request, { via: routing.mode });
    done();
  });
}
