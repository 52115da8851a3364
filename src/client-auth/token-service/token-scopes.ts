import { parseRepositoryName } from '../../registry/repository-name.js';
import type { AccessPolicy } from '../access-policy.js';
import type { ClientIdentity } from '../authenticator.js';
import type { AccessAction } from '../client-auth-config.js';

/** One entry of a token's `access` claim, as the distribution token spec writes it. */
export interface TokenAccess {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/**
 * The scopes of a token request: `resourcetype:name:action[,action]`, as many
 * `scope` parameters as the client sends, each possibly a space-separated list
 * (OAuth2 POST). The name is what lies between the first and the last colon;
 * scopes that do not have that shape are left out.
 */
export function parseScopes(values: readonly string[]): TokenAccess[] {
  return values
    .flatMap((value) => value.split(/\s+/))
    .flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) return [];
      const actions = scope.slice(last + 1).split(',').filter((a) => a !== '');
      return [{ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions }];
    });
}

/** What the access policy judges for the names of a token request's scopes, as the client wrote them. */
export interface ScopeNames {
  /** The registry and repository for a repository scope's name; null: a name of no registry Layover proxies here. */
  repository(name: string): { registry: string; repository: string } | null;
  /** The registry a `registry:catalog:*` scope is judged on; null: no catalog here. */
  readonly catalog: string | null;
}

/**
 * What `identity` gets of `requested`: each repository action the access policy allows (push only
 * with ALLOW_PUSH), the catalog when it allows pulling with no repository; everything else is
 * dropped, as the token spec asks of a token service, rather than refused. Entries keep the
 * client's names; entries for one resource are merged.
 */
export function grantAccess(policy: AccessPolicy, identity: ClientIdentity, names: ScopeNames, requested: readonly TokenAccess[], allowPush: boolean): TokenAccess[] {
  const granted = new Map<string, { type: string; name: string; actions: Set<string> }>();
  const add = (type: string, name: string, action: string): void => {
    const key = `${type}:${name}`;
    const entry = granted.get(key) ?? { type, name, actions: new Set<string>() };
    entry.actions.add(action);
    granted.set(key, entry);
  };
  for (const { type, name, actions } of requested) {
    if (type === 'repository' && parseRepositoryName(name)) {
      const judged = names.repository(name);
      if (!judged || !parseRepositoryName(judged.repository)) continue;
      for (const action of actions) {
        if (action !== 'pull' && action !== 'push') continue;
        if (action === 'push' && !allowPush) continue;
        if (policy.allows(identity, { action: action as AccessAction, registry: judged.registry, repository: judged.repository })) add(type, name, action);
      }
    } else if (type === 'registry' && name === 'catalog' && actions.includes('*') && names.catalog !== null) {
      if (policy.allows(identity, { action: 'pull', registry: names.catalog, repository: undefined })) add(type, name, '*');
    }
  }
  return [...granted.values()].map(({ type, name, actions }) => ({ type, name, actions: [...actions] }));
}

/** A token's `access` claim as issued; entries of any other shape grant nothing. */
export function parseAccessClaim(claim: unknown): TokenAccess[] {
  if (!Array.isArray(claim)) return [];
  return claim.flatMap((entry: unknown) => {
    const { type, name, actions } = (entry ?? {}) as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions)) return [];
    return [Object.freeze({ type, name, actions: Object.freeze(actions.filter((a): a is string => typeof a === 'string')) })];
  });
}

/**
 * Whether a token's `access` covers a request (the Docker token specification): `repository` in
 * the client's names, with the action (pull for GET and HEAD, push for the rest); the catalog with
 * `registry:catalog:*`. A request about no repository (the ping, the token relay) needs nothing.
 */
export function accessCovers(access: readonly TokenAccess[], request: { repository: string | undefined; action: AccessAction; catalog: boolean }): boolean {
  if (request.catalog) return access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.includes('*'));
  if (request.repository === undefined) return true;
  return access.some((a) => a.type === 'repository' && a.name === request.repository && a.actions.includes(request.action));
}

/** The space-separated scope list OAuth2 clients expect back. */
export function formatScopes(access: readonly TokenAccess[]): string {
  return access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' ');
}
