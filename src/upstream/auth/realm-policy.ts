import { createRequire } from 'node:module';
import type * as Tldts from 'tldts';

/** The public suffix list (1 MB of heap), loaded at the first question: only registries with credentials ask. */
let tldts: typeof Tldts | undefined;

/** `host[:port]` -> host, lower case; IPv6 brackets kept. */
export function hostOnly(hostPort: string): string {
  const host = hostPort.toLowerCase();
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.indexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/**
 * The registrable domain of a host by the public suffix list, private suffixes included, so two
 * tenants of `s3.amazonaws.com` or `github.io` are not one site; null for IP addresses and
 * single labels.
 */
export function registrableDomain(host: string): string | null {
  tldts ??= createRequire(import.meta.url)('tldts') as typeof Tldts;
  return tldts.getDomain(hostOnly(host), { allowPrivateDomains: true }) ?? null;
}

/** Same host, or both on one registrable domain (auth.docker.io and registry-1.docker.io). */
export function sameSite(a: string, b: string): boolean {
  const hostA = hostOnly(a);
  const hostB = hostOnly(b);
  if (hostA === hostB) return true;
  const domain = registrableDomain(hostA);
  return domain !== null && domain === registrableDomain(hostB);
}
