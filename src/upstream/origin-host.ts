import { LruMap } from '../tls/lru-map.js';

/** Upstream origins are few (the configured registries): each is parsed once, not on every request. */
const hosts = new LruMap<string, string>(1024);

/** `host[:port]` of an upstream origin (`https://host[:port]`), as `new URL(origin).host` gives it. */
export function originHost(origin: string): string {
  let host = hosts.peek(origin);
  if (host === undefined) {
    host = new URL(origin).host;
    hosts.set(origin, host);
  }
  return host;
}

/**
 * A registry as Docker names it: `registry` with the port of its `origin` when that is not 443.
 * Ports of one host are different registries, so what the cache keeps per registry (a tag's record,
 * a copy's source) is keyed by this; `target.registry` (the host alone) stays the name in logs and
 * settings. A name that already carries a port (a docker.proxy URL's) is returned as it is.
 */
export function registryAddress(target: { readonly registry: string; readonly origin: string }): string {
  if (target.registry.includes(':')) return target.registry;
  const port = /:(\d+)$/.exec(originHost(target.origin));
  return port ? `${target.registry}:${port[1]}` : target.registry;
}
