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
