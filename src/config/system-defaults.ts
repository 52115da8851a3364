import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { HostPort } from './parsers.js';

/** Used only when the host's own resolv.conf names no resolver we can use. */
export const PUBLIC_RESOLVERS: readonly HostPort[] = [
  { host: '1.1.1.1', port: 53 },
  { host: '8.8.8.8', port: 53 },
];

/** The `nameserver` lines of a resolv.conf, in order. */
export function resolvConfNameservers(text: string): HostPort[] {
  const servers: HostPort[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    const host = match?.[1]?.replace(/%.*$/, ''); // drop an IPv6 zone id
    if (host && isIP(host)) servers.push({ host, port: 53 });
  }
  return servers;
}

/** The host's resolvers, with public resolvers as the last resort. */
export function defaultUpstreamDns(resolvConfPath = '/etc/resolv.conf'): HostPort[] {
  let servers: HostPort[] = [];
  try {
    servers = resolvConfNameservers(readFileSync(resolvConfPath, 'utf8'));
  } catch {
    // No resolv.conf (minimal containers): the public resolvers below remain.
  }
  const known = new Set(servers.map((s) => s.host));
  return [...servers, ...PUBLIC_RESOLVERS.filter((p) => !known.has(p.host))];
}

/** The host's first non-loopback, non-link-local address; IPv4 first; loopback if there is none. */
export function defaultAdvertise(): string[] {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && !a.address.startsWith('fe80:'));
  const pick = addresses.find((a) => a!.family === 'IPv4') ?? addresses[0];
  return [pick?.address ?? '127.0.0.1'];
}

/** Networks that are never the public internet: loopback, RFC 1918, RFC 6598 (CGNAT), link-local and ULA. */
export const PRIVATE_NETWORKS: readonly string[] = ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', 'fe80::/10', 'fc00::/7'];

/** Who may use the DNS server as a recursive resolver by default: private networks and the host's own. */
export function defaultRecursionNetworks(): string[] {
  const own = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.cidr !== null)
    .map((a) => a!.cidr!.replace(/%[^/]*/, ''));
  return [...new Set([...PRIVATE_NETWORKS, ...own])];
}
