import type { TokenSite } from '../../proxy/request-routing.js';
import { mirrorUpstream, parseOwnName, type RoutingTables } from '../../proxy/request-target.js';
import type { ScopeNames } from './token-scopes.js';

/** Whom a token is for (its `aud`), and what the policy judges for the names of its scopes. */
export interface TokenAudience extends ScopeNames {
  readonly audience: string;
}

const judgedOn = (registry: string) => (name: string) => ({ registry, repository: name });

/**
 * The audience of a token asked for with `service` at `site`, the same value the client-auth hook
 * checks on that client's requests (src/client-auth/client-challenge.ts), or null when the token
 * service does not issue for that service there:
 * - on a custom domain: the domain only; the policy judges the domain and the client's names;
 * - on a name or address of Layover's own (mirror clients): that name only; the policy judges the
 *   registry of containerd's `ns` (which the realm carries) or the registry prefix of each name
 *   (`registry.test/bench/oci`: registry.test, bench/oci), as it does the mirror requests;
 * - on docker.proxy, also a registry Layover proxies (clients of registries' own names).
 * Tokens of one name are worth nothing at another.
 */
export function tokenAudience(site: TokenSite, service: string, tables: RoutingTables): TokenAudience | null {
  const asked = parseOwnName(service);
  if (asked === null) return null;
  if (site.kind === 'domain') return asked === site.name ? { audience: site.name, repository: judgedOn(site.name), catalog: null } : null;
  if (asked === site.name) {
    if (site.ns !== null) return { audience: site.name, repository: judgedOn(site.ns), catalog: site.ns };
    return { audience: site.name, repository: (name) => prefixed(name, tables), catalog: null };
  }
  const upstream = site.dockerProxy ? mirrorUpstream(service, tables) : null;
  return upstream ? { audience: upstream.registry, repository: judgedOn(upstream.registry), catalog: upstream.registry } : null;
}

/** A mirror path's name, `<registry>/<repository>`, for an intercepted registry (as src/proxy/request-target.ts reads one). */
function prefixed(name: string, tables: RoutingTables): { registry: string; repository: string } | null {
  const slash = name.indexOf('/');
  if (slash <= 0) return null;
  const registry = name.slice(0, slash);
  const upstream = registry.includes('.') ? mirrorUpstream(registry, tables) : null;
  return upstream ? { registry: upstream.registry, repository: name.slice(slash + 1) } : null;
}
