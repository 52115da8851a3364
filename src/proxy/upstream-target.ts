import type { HostnameSet } from '../registry/hostname.js';
import { parseHostname } from '../registry/hostname.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/** Docker Hub's registry API lives at registry-1.docker.io whatever name the client used. */
const ALIASES: Record<string, string> = {
  'docker.io': 'registry-1.docker.io',
  'index.docker.io': 'registry-1.docker.io',
};

export interface UpstreamTarget {
  /** The name the client asked for (log field `registry`). */
  registry: string;
  /** `https://host[:port]` to proxy to. */
  origin: string;
}

/**
 * The upstream for a request's Host header: only intercepted names, never
 * docker.proxy (our own) and never an arbitrary name, or Layover would be an
 * open proxy for anyone who can reach it.
 */
export function upstreamTarget(hostHeader: string | undefined, intercepted: HostnameSet): UpstreamTarget | null {
  if (!hostHeader) return null;
  const match = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(hostHeader);
  if (!match) return null;
  const host = parseHostname(match[1]!);
  if (!host || host === DOCKER_PROXY_HOST || !intercepted.has(host)) return null;
  const port = match[2] && match[2] !== '443' ? `:${Number(match[2])}` : '';
  return { registry: host, origin: `https://${ALIASES[host] ?? host}${port}` };
}
