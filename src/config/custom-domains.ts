import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseHostname } from '../registry/hostname.js';
import { parseRepositoryName } from '../registry/repository-name.js';

/**
 * A name of the operator's own in front of an upstream registry and prefix:
 * `docker.example.com/team/app` -> `gcr.io/my-project/team/app`.
 */
export interface CustomDomain {
  /** The name clients use (`docker.example.com`). */
  readonly domain: string;
  /** Repository prefix on that name (`team/app`), or '' for every repository. */
  readonly pathPrefix: string;
  /** The upstream registry, `host` or `host:port`. */
  readonly registry: string;
  /** What `pathPrefix` becomes upstream (`my-project/team/app`), or ''. */
  readonly upstreamPrefix: string;
  /** A certificate chain and key of the user's for `domain` (absolute paths); null: Layover's CA mints one. */
  readonly certFile: string | null;
  readonly keyFile: string | null;
}

class EntryError extends Error {}

const KEYS = new Set(['from', 'to', 'certFile', 'keyFile']);

/** `host[:port][/repository/prefix]` -> its parts; the prefix must follow the OCI name grammar. */
function splitLocation(value: unknown, where: string, allowPort: boolean): { host: string; port: number | null; prefix: string } {
  if (typeof value !== 'string' || value.trim() === '') throw new EntryError(`${where}: expected host[/prefix]`);
  const [hostPort = '', ...segments] = value.trim().replace(/\/+$/, '').split('/');
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(hostPort);
  const host = match ? parseHostname(match[1]!) : null;
  if (!host) throw new EntryError(`${where}: "${hostPort}" is not a hostname`);
  const port = match![2] === undefined ? null : Number(match![2]);
  if (port !== null && (!allowPort || port < 1 || port > 65535)) throw new EntryError(`${where}: ${allowPort ? 'bad port' : 'no port here: clients reach custom domains on 443'}`);
  const prefix = segments.join('/');
  if (prefix !== '' && !parseRepositoryName(prefix)) throw new EntryError(`${where}: "${prefix}" is not a repository name prefix`);
  return { host, port: port === 443 ? null : port, prefix };
}

function readablePem(path: unknown, where: string, marker: string): string {
  if (typeof path !== 'string' || path.trim() === '') throw new EntryError(`${where}: expected a path to a PEM file`);
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // reported below
  }
  if (!text.includes(marker)) throw new EntryError(`${where}: expected a readable PEM file, got "${path}"`);
  return resolve(path);
}

/** `customDomains: [{from, to, certFile?, keyFile?}]`; returns the entries or an error message. */
export function parseCustomDomains(value: unknown): CustomDomain[] | string {
  try {
    if (!Array.isArray(value)) return 'expected a list of {from: domain[/path], to: registry[/prefix], certFile?, keyFile?}';
    const domains = value.map((entry, index): CustomDomain => {
      const where = `entry ${index + 1}`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new EntryError(`${where} is not an object`);
      const e = entry as Record<string, unknown>;
      const unknown = Object.keys(e).find((k) => !KEYS.has(k));
      if (unknown) throw new EntryError(`${where}: unknown key "${unknown}" (keys: ${[...KEYS].join(', ')})`);
      const from = splitLocation(e.from, `${where}: from`, false);
      const to = splitLocation(e.to, `${where}: to`, true);
      if ((e.certFile === undefined) !== (e.keyFile === undefined)) throw new EntryError(`${where}: certFile and keyFile go together`);
      return {
        domain: from.host,
        pathPrefix: from.prefix,
        registry: to.port === null ? to.host : `${to.host}:${to.port}`,
        upstreamPrefix: to.prefix,
        certFile: e.certFile === undefined ? null : readablePem(e.certFile, `${where}: certFile`, '-----BEGIN CERTIFICATE-----'),
        keyFile: e.keyFile === undefined ? null : readablePem(e.keyFile, `${where}: keyFile`, 'PRIVATE KEY-----'),
      };
    });
    const seen = new Set<string>();
    for (const [index, d] of domains.entries()) {
      const key = `${d.domain}/${d.pathPrefix}`;
      if (seen.has(key)) throw new EntryError(`entry ${index + 1}: ${key} is mapped twice`);
      seen.add(key);
      const certs = new Set(domains.filter((o) => o.domain === d.domain).map((o) => `${o.certFile}|${o.keyFile}`));
      if (certs.size > 1) throw new EntryError(`entry ${index + 1}: every entry for ${d.domain} must name the same certFile and keyFile`);
    }
    return domains;
  } catch (error) {
    if (error instanceof EntryError) return error.message;
    throw error;
  }
}
