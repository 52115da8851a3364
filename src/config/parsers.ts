import { isIP } from 'node:net';
import { parseDuration, parseSize } from './units.js';
import { parseHostname } from '../registry/hostname.js';

// Each parser takes what a config source holds (a string from the environment
// or a flag; any JSON value from a config file) and returns undefined when the
// value does not have the expected form. The caller words the error.

export type Parser<T> = (value: unknown) => T | undefined;

export interface HostPort {
  host: string;
  port: number;
}

const text = (value: unknown): string | undefined =>
  typeof value === 'string' ? value.trim() : typeof value === 'number' ? String(value) : undefined;

/** A list given as an array (config file) or as a string split on commas and white space. */
const list = (value: unknown): string[] | undefined => {
  if (Array.isArray(value)) return value.every((v) => typeof v === 'string') ? value.map((v) => v.trim()) : undefined;
  const s = text(value);
  return s === undefined ? undefined : s.split(/[\s,]+/).filter(Boolean);
};

export const string: Parser<string> = (value) => {
  const s = text(value);
  return s ? s : undefined;
};

export const boolean: Parser<boolean> = (value) => {
  if (typeof value === 'boolean') return value;
  const s = text(value)?.toLowerCase();
  if (s === undefined) return undefined;
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  return undefined;
};

export const size: Parser<number> = (value) => {
  const s = text(value);
  return s === undefined ? undefined : (parseSize(s) ?? undefined);
};

export const duration: Parser<number> = (value) => {
  const s = text(value);
  return s === undefined ? undefined : (parseDuration(s) ?? undefined);
};

/** A whole number of at least 0 (`0` usually switches the limit off). */
export const count: Parser<number> = (value) => {
  const s = text(value);
  return s !== undefined && /^\d{1,9}$/.test(s) ? Number(s) : undefined;
};

/** A regular expression; the empty string switches the tier off (null), as in the nginx proxies. */
export const regex: Parser<RegExp | null> = (value) => {
  if (value === '' || value === null) return null;
  if (typeof value !== 'string') return undefined;
  try {
    return new RegExp(value);
  } catch {
    return undefined;
  }
};

export const logLevel: Parser<string> = (value) => {
  const s = text(value)?.toLowerCase();
  return s && ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(s) ? s : undefined;
};

function port(s: string): number | undefined {
  if (!/^\d{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

/** `ADDR:PORT`, `[v6]:PORT` or `:PORT` (all addresses). */
export function hostPort(s: string, defaultPort?: number): HostPort | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    const p = bracketed[2] === undefined ? defaultPort : port(bracketed[2]);
    return isIP(bracketed[1]!) === 6 && p !== undefined ? { host: bracketed[1]!, port: p } : undefined;
  }
  if (isIP(s) === 6) return defaultPort === undefined ? undefined : { host: s, port: defaultPort };
  const colon = s.lastIndexOf(':');
  const host = colon < 0 ? s : s.slice(0, colon) || '0.0.0.0';
  const p = colon < 0 ? defaultPort : port(s.slice(colon + 1));
  return isIP(host) === 4 && p !== undefined ? { host, port: p } : undefined;
}

export const listen: Parser<HostPort> = (value) => {
  const s = text(value);
  return s ? hostPort(s) : undefined;
};

/** Like `listen`, but `off` switches the listener off (null). */
export const optionalListen: Parser<HostPort | null> = (value) =>
  value === false || text(value)?.toLowerCase() === 'off' ? null : listen(value);

export const ipList: Parser<string[]> = (value) => {
  const items = list(value);
  return items && items.length > 0 && items.every((ip) => isIP(ip) !== 0) ? items : undefined;
};

/** Resolvers: `IP`, `IP:PORT`, `[v6]:PORT`; port 53 by default. */
export const resolverList: Parser<HostPort[]> = (value) => {
  const items = list(value);
  if (!items || items.length === 0) return undefined;
  const parsed = items.map((item) => hostPort(item, 53));
  return parsed.every((p) => p !== undefined) ? (parsed as HostPort[]) : undefined;
};

/** Hostnames or `*.suffix` wildcards, lower-cased, each with an optional `:port` (`registry.example:5000`). */
export const hostnamePatterns: Parser<string[]> = (value) => patternsOf(value, false);

/** hostnamePatterns with an explicit :443 kept: where a pattern without a port means every port, `host:443` is that port only. */
export const hostnamePortPatterns: Parser<string[]> = (value) => patternsOf(value, true);

function patternsOf(value: unknown, keep443: boolean): string[] | undefined {
  const items = list(value);
  if (!items) return undefined;
  const parsed = items.map((item) => {
    const [pattern, portText, ...rest] = item.split(':');
    if (rest.length > 0 || pattern === undefined) return undefined;
    const p = portText === undefined ? undefined : port(portText);
    if (portText !== undefined && !p) return undefined;
    const wildcard = pattern.startsWith('*.');
    const name = parseHostname(wildcard ? pattern.slice(2) : pattern);
    if (!name) return undefined;
    return `${wildcard ? '*.' : ''}${name}${p && (keep443 || p !== 443) ? `:${p}` : ''}`;
  });
  return parsed.every((p) => p) ? (parsed as string[]) : undefined;
}

/** Kept as given; checked once the delimiters are known (see credentials.ts). */
export const raw: Parser<unknown> = (value) => value;
