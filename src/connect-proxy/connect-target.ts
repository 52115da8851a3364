import { isIP } from 'node:net';
import { parseHostname, type Hostname } from '../registry/hostname.js';

/** Where a CONNECT asks to go: a DNS name or an IP literal, and a port. */
export type ConnectTarget =
  | { readonly kind: 'name'; readonly host: Hostname; readonly port: number }
  | { readonly kind: 'ip'; readonly host: string; readonly port: number };

/** The longest authority worth reading: a 253-character name, a colon and five digits, with room for brackets. */
const MAX_AUTHORITY = 262;

/**
 * The authority-form target of `CONNECT host:port HTTP/1.1` (RFC 9110 §9.3.6): a DNS name, an IPv4
 * address or a bracketed IPv6 literal, always with a port from 1 to 65535. Anything else (no port, a
 * path, user info, an absolute URL, a zone ID, 300 characters of dots) is null: the caller answers 400.
 */
export function parseConnectTarget(authority: string | undefined): ConnectTarget | null {
  if (!authority || authority.length > MAX_AUTHORITY) return null;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(authority);
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? { kind: 'ip', host: match[1].toLowerCase(), port } : null;
  const host = match[2]!;
  if (isIP(host) === 4) return { kind: 'ip', host, port };
  // All-digit names that are not a valid dotted quad (`1.2.3`, `999.1.1.1`) would reach a resolver
  // that may read them as addresses: refused, as a certificate could never name them either.
  if (/^[\d.]+$/.test(host)) return null;
  const name = parseHostname(host);
  return name ? { kind: 'name', host: name, port } : null;
}

/** `host:port`, with brackets around an IPv6 literal: for log lines and messages. */
export function formatTarget(target: ConnectTarget): string {
  return target.kind === 'ip' && target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}
