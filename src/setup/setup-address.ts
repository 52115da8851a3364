import { isIP } from 'node:net';
import { parseHostname } from '../registry/hostname.js';

/** The address a node reached Layover at, as its request's Host header said. */
export interface SetupAddress {
  /** A lower-case DNS name, a dotted quad, or an IPv6 address (without brackets). */
  readonly host: string;
  readonly family: 0 | 4 | 6;
  /** null when Host named no port. */
  readonly port: number | null;
}

/**
 * The Host header of a /setup/* request, or null unless it is exactly a DNS name (letters, digits,
 * hyphens and dots), a dotted quad or a bracketed IPv6 address, with an optional port from 1 to
 * 65535. The value ends up inside a shell script that runs as root: nothing else may pass, whatever
 * the request guards in front already allowed.
 */
export function parseSetupAddress(hostHeader: string | undefined): SetupAddress | null {
  const match = /^(?:\[([0-9A-Fa-f:.]{2,45})\]|([A-Za-z0-9.-]{1,253}))(?::(\d{1,5}))?$/.exec(hostHeader ?? '');
  if (!match) return null;
  const port = match[3] === undefined ? null : Number(match[3]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? { host: match[1].toLowerCase(), family: 6, port } : null;
  const host = match[2]!;
  if (isIP(host) === 4) return { host, family: 4, port };
  if (/^[\d.]+$/.test(host)) return null;
  const name = parseHostname(host);
  // parseHostname allows a trailing dot; a URL in a script is better without it.
  return name && !host.endsWith('.') ? { host: name, family: 0, port } : null;
}

/** `host:port`, bracketing an IPv6 address. */
export function formatSetupAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
