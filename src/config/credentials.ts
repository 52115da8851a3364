import { readFileSync } from 'node:fs';
import { Secret } from './secret.js';
import { parseHostname } from '../registry/hostname.js';

export interface RegistryCredential {
  /** The registry host (optionally host:port) the credential is sent to. */
  readonly registry: string;
  readonly username: string;
  readonly password: Secret;
}

/** Thrown with a message that never contains the credential itself. */
class CredentialError extends Error {}

function registryName(value: string, where: string): string {
  const [host, port, ...rest] = value.split(':');
  const valid = parseHostname(host ?? '') && rest.length === 0 && (port === undefined || /^\d{1,5}$/.test(port));
  if (!valid) throw new CredentialError(`${where}: the registry is not a hostname[:port]`);
  return value.toLowerCase();
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

/** Config-file entries: `{registry, username, password | passwordFile | passwordEnv}`. */
function fromEntries(entries: unknown[], env: NodeJS.ProcessEnv): RegistryCredential[] {
  return entries.map((entry, index) => {
    const where = `entry ${index + 1}`;
    if (typeof entry !== 'object' || entry === null) throw new CredentialError(`${where} is not an object`);
    const e = entry as Record<string, unknown>;
    if (typeof e.registry !== 'string' || typeof e.username !== 'string' || e.username === '') {
      throw new CredentialError(`${where} needs registry and username`);
    }
    const sources = ['password', 'passwordFile', 'passwordEnv'].filter((k) => e[k] !== undefined);
    if (sources.length !== 1) throw new CredentialError(`${where} needs exactly one of password, passwordFile, passwordEnv`);
    let password: string | undefined;
    if (typeof e.password === 'string') password = e.password;
    else if (typeof e.passwordFile === 'string') {
      try {
        password = readFileSync(e.passwordFile, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        throw new CredentialError(`${where}: cannot read passwordFile ${e.passwordFile} (${(error as NodeJS.ErrnoException).code})`);
      }
    } else if (typeof e.passwordEnv === 'string') {
      password = env[e.passwordEnv];
      if (password === undefined) throw new CredentialError(`${where}: environment variable ${e.passwordEnv} is not set`);
    }
    if (!password) throw new CredentialError(`${where}: the password is empty or not a string`);
    return { registry: registryName(e.registry, where), username: e.username, password: new Secret(password) };
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
