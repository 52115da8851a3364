import type { CustomDomain } from '../config/custom-domains.js';
import { parseHostname } from './hostname.js';
import { NameMapping } from './name-mapping.js';

/** One custom-domain entry with its name mapping. */
export interface DomainRoute {
  readonly entry: CustomDomain;
  readonly mapping: NameMapping;
}

/**
 * Which custom-domain entry a request on a custom domain belongs to: the entry of that domain
 * whose path prefix is the longest that contains the repository (`team/app` contains `team/app`
 * and `team/app/x`). Requests about no repository (the ping) go to the domain's default entry:
 * the one without a prefix, else the first listed.
 */
export class CustomDomainRoutes {
  readonly #byDomain = new Map<string, DomainRoute[]>();

  constructor(domains: readonly CustomDomain[]) {
    for (const entry of domains) {
      const routes = this.#byDomain.get(entry.domain) ?? [];
      routes.push({ entry, mapping: new NameMapping(entry.pathPrefix, entry.upstreamPrefix) });
      this.#byDomain.set(entry.domain, routes);
    }
  }

  get size(): number {
    return this.#byDomain.size;
  }

  /** True when `host` (any case, trailing dot allowed, no port) is a custom domain. */
  has(host: string): boolean {
    const name = parseHostname(host);
    return name !== null && this.#byDomain.has(name);
  }

  domains(): string[] {
    return [...this.#byDomain.keys()];
  }

  /** The entry that holds the client's repository `name` on `domain`, or null (outside every prefix). */
  forRepository(domain: string, name: string): DomainRoute | null {
    let best: DomainRoute | null = null;
    for (const route of this.#routes(domain)) {
      const prefix = route.entry.pathPrefix;
      const inside = prefix === '' || name === prefix || name.startsWith(`${prefix}/`);
      if (inside && (best === null || prefix.length > best.entry.pathPrefix.length)) best = route;
    }
    return best;
  }

  /** The entry of `domain` whose prefix is exactly `prefix`. */
  byPrefix(domain: string, prefix: string): DomainRoute | null {
    return this.#routes(domain).find((route) => route.entry.pathPrefix === prefix) ?? null;
  }

  /** The entry for requests that name no repository. */
  defaultFor(domain: string): DomainRoute | null {
    const routes = this.#routes(domain);
    return routes.find((route) => route.entry.pathPrefix === '') ?? routes[0] ?? null;
  }

  #routes(domain: string): DomainRoute[] {
    const name = parseHostname(domain);
    return (name && this.#byDomain.get(name)) || [];
  }
}
