import { Secret } from './secret.js';
import { readSecretSource } from './secret-source.js';
import { parseDuration } from './units.js';
import { parseHostname } from '../registry/hostname.js';
import { parseRepositoryName } from '../registry/repository-name.js';

/** How long a credential helper's answer is used before the helper runs again (unless `maxAge` says otherwise). */
export const DEFAULT_HELPER_MAX_AGE_MS = 30 * 60_000;

export interface RegistryCredential {
  /**
   * The registry host (optionally host:port) the credential belongs to, or the host of the token
   * realm it is sent to (`auth.docker.io`, as the nginx proxies' users write Docker Hub's entry).
   */
  readonly registry: string;
  /** Empty for a helper credential: the helper supplies it. */
  readonly username: string;
  /** Empty for a helper credential: the helper supplies it. */
  readonly password: Secret;
  /** Only for repositories at or below this prefix (config file `registry: host/prefix`); the longest prefix wins. */
  readonly prefix?: string;
  /** A token realm host on another domain that may receive this credential (config file `realm`). */
  readonly realm?: string;
  /** A docker-credential-helper (`docker-credential-NAME get`) supplies username and secret, re-run after maxAgeMs or a rejection. */
  readonly helper?: { readonly name: string; readonly maxAgeMs: number };
}

/** Thrown with a message that never contains the credential itself. */
class CredentialError extends Error {}

function registryName(value: string, where: string): string {
  const [host, port, ...rest] = value.split(':');
  const valid = parseHostname(host ?? '') && rest.length === 0 && (port === undefined || /^\d{1,5}$/.test(port));
  if (!valid) throw new CredentialError(`${where}: the registry is not a hostname[:port]`);
  const name = value.toLowerCase();
  return name.endsWith(':443') ? name.slice(0, -4) : name;
}

/** `host[:port][/repository/prefix]` (config file only): the registry and an optional repository prefix. */
function registryAndPrefix(value: string, where: string): { registry: string; prefix?: string } {
  const slash = value.indexOf('/');
  if (slash < 0) return { registry: registryName(value, where) };
  const prefix = value.slice(slash + 1).replace(/\/+$/, '');
  if (!parseRepositoryName(prefix)) throw new CredentialError(`${where}: "${value.slice(slash + 1)}" is not a repository prefix such as team/app`);
  return { registry: registryName(value.slice(0, slash), where), prefix };
}

/**
 * AUTH_REGISTRIES as the nginx-based proxies read it: entries split by
 * AUTH_REGISTRIES_DELIMITER, parts by AUTH_REGISTRY_DELIMITER. Unlike their
 * shell loop, everything after the second delimiter is the password, so a
 * password may contain the part delimiter.
 */
function fromString(text: string, entryDelimiter: string, partDelimiter: string): RegistryCredential[] {
  return text
    .split(entryDelimiter)
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry, index) => {
      const where = `entry ${index + 1}`;
      const [registry, username, ...password] = entry.split(partDelimiter);
      if (!registry || !username || password.length === 0 || password.join('') === '') {
        throw new CredentialError(`${where} is not hostname${partDelimiter}username${partDelimiter}password`);
      }
      return { registry: registryName(registry, where), username, password: new Secret(password.join(partDelimiter)) };
    });
}

function readPassword(e: Record<string, unknown>, where: string, env: NodeJS.ProcessEnv): string {
  const password = readSecretSource(e, 'password', where, env);
  if (typeof password !== 'string') throw new CredentialError(password.error);
  return password;
}

/**
 * Config-file entries: `{registry, username, password | passwordFile | passwordEnv}` or
 * `{registry, helper, maxAge?}`; `registry` may carry a repository prefix (`host/team`), and
 * `realm` names a token realm host on another domain that may receive the credential.
 */
function fromEntries(entries: unknown[], env: NodeJS.ProcessEnv): RegistryCredential[] {
  return entries.map((entry, index) => {
    const where = `entry ${index + 1}`;
    if (typeof entry !== 'object' || entry === null) throw new CredentialError(`${where} is not an object`);
    const e = entry as Record<string, unknown>;
    if (typeof e.registry !== 'string') throw new CredentialError(`${where} needs registry`);
    const target = registryAndPrefix(e.registry, where);
    const extra: { realm?: string } = {};
    if (e.realm !== undefined) {
      const realm = typeof e.realm === 'string' ? parseHostname(e.realm) : null;
      if (!realm) throw new CredentialError(`${where}: realm is not a hostname`);
      extra.realm = realm;
    }
    const sources = ['password', 'passwordFile', 'passwordEnv'].filter((k) => e[k] !== undefined);
    if (e.helper !== undefined) {
      if (typeof e.helper !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(e.helper)) {
        throw new CredentialError(`${where}: helper is not a credential helper name such as ecr-login (docker-credential-NAME)`);
      }
      if (e.username !== undefined || sources.length > 0) throw new CredentialError(`${where}: a helper entry takes no username or password`);
      const maxAgeMs = e.maxAge === undefined ? DEFAULT_HELPER_MAX_AGE_MS : typeof e.maxAge === 'string' || typeof e.maxAge === 'number' ? parseDuration(String(e.maxAge)) : null;
      if (!maxAgeMs) throw new CredentialError(`${where}: maxAge is not a duration such as 30m or 6h`);
      return { ...target, ...extra, username: '', password: new Secret(''), helper: { name: e.helper, maxAgeMs } };
    }
    if (typeof e.username !== 'string' || e.username === '') throw new CredentialError(`${where} needs username (or helper)`);
    return { ...target, ...extra, username: e.username, password: new Secret(readPassword(e, where, env)) };
  });
}

/** Returns the credentials, or an error message that names no secret. */
export function parseCredentials(
  value: unknown,
  entryDelimiter: string,
  partDelimiter: string,
  env: NodeJS.ProcessEnv,
): RegistryCredential[] | string {
  try {
    if (typeof value === 'string') return fromString(value, entryDelimiter, partDelimiter);
    if (Array.isArray(value)) return fromEntries(value, env);
    return 'expected a string or a list of entries';
  } catch (error) {
    if (error instanceof CredentialError) return error.message;
    throw error;
  }
}
