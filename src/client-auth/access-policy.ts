import type { ClientIdentity } from './authenticator.js';
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

function registryMatches(pattern: string, registry: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return registry.endsWith(pattern.slice(1)) && registry.length > pattern.length - 1;
  return pattern === registry;
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
