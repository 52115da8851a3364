import type { NameMapping } from './name-mapping.js';
import { parseRegistryPath } from './registry-route.js';

/** Where the upstream answer came from: its origin and the request's path and query there. */
export interface UpstreamRequestUrl {
  readonly origin: string;
  readonly path: string;
  readonly query: string;
}

/**
 * A `Location` (or a `Link` target) from the upstream as the client must see it, when the client
 * reached the upstream under other names: a URL back into the upstream's registry API becomes a
 * relative reference with the client's repository name and `clientQuery` (containerd's `ns`), so
 * the client resolves it against the name it used, i.e. Layover. A URL to another host (a storage
 * host) is left as it is.
 */
export function clientLocation(location: string, from: UpstreamRequestUrl, names: NameMapping, clientQuery: string): string {
  let url: URL;
  try {
    url = new URL(location, `${from.origin}${from.path}${from.query ? `?${from.query}` : ''}`);
  } catch {
    return location;
  }
  if (url.origin !== new URL(from.origin).origin) return location;
  let path = url.pathname;
  let route = null;
  try {
    route = parseRegistryPath(path);
  } catch {
    // not one of the API's paths: only the query changes
  }
  if (route && 'name' in route) {
    const own = names.toClient(route.name);
    if (own) path = `/v2/${own}${path.slice(`/v2/${route.name}`.length)}`;
  }
  const search = clientQuery ? (url.search ? `${url.search}&${clientQuery}` : `?${clientQuery}`) : url.search;
  return `${path}${search}`;
}

/** Every `<target>` of a `Link` header (tag list and referrers pagination) through clientLocation. */
export function clientLink(link: string, from: UpstreamRequestUrl, names: NameMapping, clientQuery: string): string {
  return link.replace(/<([^>]*)>/g, (_match, target: string) => `<${clientLocation(target, from, names, clientQuery)}>`);
}
