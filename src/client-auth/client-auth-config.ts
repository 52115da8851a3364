import { Secret } from '../config/secret.js';
import { readSecretSource } from '../config/secret-source.js';

export type ClientAuthMode = 'none' | 'htpasswd' | 'tokens' | 'jwt' | 'ldap';
export type AccessAction = 'pull' | 'push';

/** A static bearer token (config file `clientTokens`). */
export interface ClientToken {
  readonly user: string;
  readonly token: Secret;
  readonly groups: readonly string[];
}

/**
 * One access rule (config file `accessRules`): it applies to a request when every
 * list it has matches (a missing list matches everything) and then allows `actions`.
 */
export interface AccessRule {
  readonly users?: readonly string[];
  readonly groups?: readonly string[];
  /** Registry names as clients use them (`ghcr.io`), or `*.domain`. */
  readonly registries?: readonly string[];
  /** Globs: `*` within one path segment, `**` across segments (`team/**`). */
  readonly repositories?: readonly string[];
  readonly actions: readonly AccessAction[];
}

/** Thrown with a message that never contains a token. */
class EntryError extends Error {}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v.trim() !== '')) {
    throw new EntryError(`${where}: expected a non-empty list of names`);
  }
  return value.map((v: string) => v.trim());
}

function readToken(e: Record<string, unknown>, where: string, env: NodeJS.ProcessEnv): string {
  const token = readSecretSource(e, 'token', where, env);
  if (typeof token !== 'string') throw new EntryError(token.error);
  if (/\s/.test(token)) throw new EntryError(`${where}: the token contains white space`);
  if (token.length < 16) throw new EntryError(`${where}: the token is shorter than 16 characters`);
  return token;
}

/** `clientTokens: [{user, token | tokenFile | tokenEnv, groups?}]`; returns an error message naming no token. */
export function parseClientTokens(value: unknown, env: NodeJS.ProcessEnv): ClientToken[] | string {
  try {
    if (!Array.isArray(value)) return 'expected a list of {user, token | tokenFile | tokenEnv, groups?}';
    const tokens = value.map((entry, index): ClientToken => {
      const where = `entry ${index + 1}`;
      if (typeof entry !== 'object' || entry === null) throw new EntryError(`${where} is not an object`);
      const e = entry as Record<string, unknown>;
      if (typeof e.user !== 'string' || e.user.trim() === '') throw new EntryError(`${where} needs user`);
      const groups = e.groups === undefined ? [] : stringList(e.groups, `${where}: groups`);
      return { user: e.user.trim(), token: new Secret(readToken(e, where, env)), groups };
    });
    const seen = new Set<string>();
    tokens.forEach((t, index) => {
      if (seen.has(t.token.reveal())) throw new EntryError(`entry ${index + 1}: the same token as an earlier entry`);
      seen.add(t.token.reveal());
    });
    return tokens;
  } catch (error) {
    if (error instanceof EntryError) return error.message;
    throw error;
  }
}

const RULE_KEYS = new Set(['users', 'groups', 'registries', 'repositories', 'actions']);

/** `accessRules: [{users?, groups?, registries?, repositories?, actions}]`; returns the rules or an error message. */
export function parseAccessRules(value: unknown): AccessRule[] | string {
  try {
    if (!Array.isArray(value)) return 'expected a list of {users?, groups?, registries?, repositories?, actions: [pull, push]}';
    return value.map((entry, index): AccessRule => {
      const where = `rule ${index + 1}`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new EntryError(`${where} is not an object`);
      const e = entry as Record<string, unknown>;
      const unknown = Object.keys(e).find((k) => !RULE_KEYS.has(k));
      if (unknown) throw new EntryError(`${where}: unknown key "${unknown}" (keys: ${[...RULE_KEYS].join(', ')})`);
      const actions = stringList(e.actions, `${where}: actions`).map((a) => a.toLowerCase());
      const bad = actions.find((a) => a !== 'pull' && a !== 'push');
      if (bad !== undefined) throw new EntryError(`${where}: actions: expected pull or push, got "${bad}"`);
      const rule: { -readonly [K in keyof AccessRule]: AccessRule[K] } = { actions: actions as AccessAction[] };
      if (e.users !== undefined) rule.users = stringList(e.users, `${where}: users`);
      if (e.groups !== undefined) rule.groups = stringList(e.groups, `${where}: groups`);
      if (e.registries !== undefined) rule.registries = stringList(e.registries, `${where}: registries`).map((r) => r.toLowerCase());
      if (e.repositories !== undefined) rule.repositories = stringList(e.repositories, `${where}: repositories`);
      return rule;
    });
  } catch (error) {
    if (error instanceof EntryError) return error.message;
    throw error;
  }
}

/** `clientGroups: {group: [user, ...]}`: groups for users of any authenticator (htpasswd has none of its own). */
export function parseClientGroups(value: unknown): Record<string, string[]> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a mapping of group name to a list of users';
  const groups: Record<string, string[]> = {};
  try {
    for (const [name, users] of Object.entries(value)) groups[name] = stringList(users, `group ${name}`);
  } catch (error) {
    if (error instanceof EntryError) return error.message;
    throw error;
  }
  return groups;
}
