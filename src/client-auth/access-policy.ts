import type { ClientIdentity } from './authenticator.js';
import { DOCKER_HUB_HOSTS } from '../registry/well-known-hosts.js';
import type { AccessAction, AccessRule } from './client-auth-config.js';

/** When authentication is on and no rules are configured: every authenticated user may pull, nobody may push. */
export const DEFAULT_ACCESS_RULES: readonly AccessRule[] = Object.freeze([Object.freeze({ actions: Object.freeze(['pull'] as const) })]);

/** What a request wants: `repository` is undefined for requests about no repository (catalog, token endpoint). */
export interface AccessRequest {
  action: AccessAction;
  registry: string;
  repository: string | undefined;
}

/** `*` within one path segment, `**` across segments, `?` one character. */
function globPattern(glob: string): RegExp {
  const source = glob
    .split(/(\*\*|\*|\?)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

const DOCKER_HUB: ReadonlySet<string> = new Set(DOCKER_HUB_HOSTS);

/** `host[:port]` split; `port` null when none is written; `name`: Docker Hub's names as docker.io. */
function hostAndPort(text: string): { host: string; name: string; port: string | null } {
  const colon = text.lastIndexOf(':');
  const host = colon < 0 ? text : text.slice(0, colon);
  const port = colon < 0 ? null : text.slice(colon + 1);
  return { host, name: DOCKER_HUB.has(host) ? 'docker.io' : host, port };
}

/**
 * A rule's registry pattern against a request's registry (`host[:port]`, as Docker names it):
 * `host:port` is that port only (ports of one host are registries of their own), a name without a
 * port is every port of it, `*.domain` hosts under it, `*` any; Docker Hub by any of its names.
 */
function registryMatches(pattern: string, registry: string): boolean {
  if (pattern === '*') return true;
  const wanted = hostAndPort(pattern);
  const asked = hostAndPort(registry);
  // A request names 443 by leaving it out; a pattern may write it (`host:443`: that port only).
  if (wanted.port !== null && wanted.port !== (asked.port ?? '443')) return false;
  // A wildcard sees the name the client used (`*.docker.io` covers registry-1.docker.io).
  if (wanted.host.startsWith('*.')) return asked.host.endsWith(wanted.host.slice(1)) && asked.host.length > wanted.host.length - 1;
  return wanted.name === asked.name;
}

interface CompiledRule {
  rule: AccessRule;
  repositories: RegExp[] | undefined;
}

/**
 * Access rules from the config file: a request is allowed when some rule
 * matches its user (or one of the user's groups), registry and repository and
 * lists its action. Nothing is allowed that no rule allows.
 */
export class AccessPolicy {
  readonly #rules: readonly CompiledRule[];

  constructor(rules: readonly AccessRule[] | null) {
    this.#rules = (rules ?? DEFAULT_ACCESS_RULES).map((rule) => ({ rule, repositories: rule.repositories?.map(globPattern) }));
  }

  allows(identity: ClientIdentity, request: AccessRequest): boolean {
    return this.#rules.some(({ rule, repositories }) => {
      if (!rule.actions.includes(request.action)) return false;
      const who = (rule.users === undefined && rule.groups === undefined) || rule.users?.includes(identity.user) === true || rule.groups?.some((g) => identity.groups.includes(g)) === true;
      if (!who) return false;
      if (rule.registries && !rule.registries.some((p) => registryMatches(p, request.registry.toLowerCase()))) return false;
      if (repositories) return request.repository !== undefined && repositories.some((p) => p.test(request.repository!));
      return true;
    });
  }
}
