import { OciError } from '../registry/oci-errors.js';
import type { UpstreamTarget } from './upstream-target.js';

/** Why one attempt to reach an upstream failed: an errno-style code and, when known, the address dialled. */
export interface ConnectFailure {
  code: string;
  address?: string;
}

/**
 * How far each failure got, most telling first: a peer that answered (refused, reset, a TLS
 * problem) says more than a route that is missing, which says more than silence. With happy
 * eyeballs one address family often fails for a reason of its own (no IPv6 route) while the other
 * has the real one, and Node reports only the first address's code for all of them.
 */
const TELLING: readonly string[] = ['ENOTFOUND', 'EAI_AGAIN', 'ENODATA', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'];

function rank(code: string): number {
  const index = TELLING.indexOf(code);
  // TLS failures (certificate not trusted, wrong name) come from a peer that answered: as telling as a refusal.
  if (index === -1) return /CERT|TLS|SSL|SIGNATURE/.test(code) ? TELLING.indexOf('ECONNREFUSED') : TELLING.length;
  return index;
}

/**
 * Every attempt behind a failed upstream request, most telling first. Looks through the wrappers
 * reply-from and undici put around the socket's error (`cause`) and the AggregateError that happy
 * eyeballs raises when every address failed (`errors`).
 */
export function connectFailures(error: unknown): ConnectFailure[] {
  const found: ConnectFailure[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, depth: number): void => {
    if (!(value instanceof Error) || seen.has(value) || depth > 8) return;
    seen.add(value);
    const nested = value instanceof AggregateError ? value.errors : [];
    if (nested.length > 0) {
      for (const inner of nested) visit(inner, depth + 1);
      return;
    }
    if (value.cause instanceof Error) return visit(value.cause, depth + 1);
    const { code, address, port } = value as NodeJS.ErrnoException & { address?: string; port?: number };
    const where = address === undefined ? {} : { address: port === undefined ? address : `${address.includes(':') ? `[${address}]` : address}:${port}` };
    found.push({ code: typeof code === 'string' ? code : value.message, ...where });
  };
  visit(error, 0);
  return found.sort((a, b) => rank(a.code) - rank(b.code));
}

/**
 * The client's error when an upstream cannot be reached (DNS, connect, timeout): 503 UNAVAILABLE
 * naming it, with the most telling reason and, when several addresses were tried, each one's code.
 */
export function unreachable(target: UpstreamTarget, cause: Error): OciError {
  const failures = connectFailures(cause);
  const reason = failures[0]?.code ?? cause.message;
  const codes = [...new Set(failures.map((failure) => failure.code))];
  const detail = codes.length > 1 ? { reason, reasons: codes } : { reason };
  return new OciError('UNAVAILABLE', `upstream registry ${target.registry} is unreachable (${reason})`, detail, { cause });
}
