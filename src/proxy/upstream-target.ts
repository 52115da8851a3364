import type { HostnameSet } from '../registry/hostname.js';
import { parseHostname } from '../registry/hostname.js';
import { LruMap } from '../tls/lru-map.js';
import type { NameMapping } from '../registry/name-mapping.js';
import { DOCKER_PROXY_HOST } from '../registry/well-known-hosts.js';

/** Docker Hub's registry API lives at registry-1.docker.io whatever name the client used. */
const ALIASES: Record<string, string> = {
  'docker.io': 'registry-1.docker.io',
  'index.docker.io': 'registry-1.docker.io',
};

export interface UpstreamTarget {
  /**
   * The upstream registry's name as Docker names it: `host`, or `host:port` for a port other than
   * 443, since ports of one host are registries of their own (log field `registry`, cache keys, the
   * access policy, client tokens' audience, src/access).
   */
  readonly registry: string;
  /** `https://host[:port]` to proxy to. */
  readonly origin: string;
  /**
   * How the request going upstream differs from the client's (mirror modes, custom domains: see
   * ./request-target.ts); absent when the Host named the registry and everything goes as it came.
   */
  readonly rewrite?: UpstreamRewrite;
}

/** A request that reached Layover under another name or path than the upstream's. */
export interface UpstreamRewrite {
  /** The path sent upstream (upstream repository names, no mirror prefix). */
  readonly path: string;
  /** The query sent upstream, without `?` (containerd's `ns` removed); '' for none. */
  readonly query: string;
  /** Client names <-> upstream names, for paths, Locations, challenge scopes and tag lists. */
  readonly names: NameMapping;
  /**
   * The scopes of a token request in upstream names, those that cannot be mapped dropped: on a
   * custom domain each by the entry its repository belongs to (a client asks the realm its ping
   * gave for every repository), where `names` knows only one entry.
   */
  readonly scopesToUpstream: (scope: string) => string;
  /** Layover's token endpoint as this client reaches it: where Bearer realms in answers point. */
  readonly tokenRealm: string;
  /** Names differ upstream, so Bearer challenges point at Layover even when it holds no credential. */
  readonly alwaysManaged: boolean;
  /** Added to Locations that lead back to the upstream (`ns=docker.io`), or ''. */
  readonly clientQuery: string;
  /** Blob redirects are followed by Layover: the client may not resolve docker.proxy. */
  readonly followRedirects: boolean;
}

/** A Host header split into its parts; shared between requests, so never changed. */
export type HostPort = Readonly<{ host: string; port: number | null }>;

/** A client sends the same few Host headers again and again: each is split once (bounded, for those who vary it). */
const splits = new LruMap<string, HostPort | null>(1024);
/** A hostname (253) and `:65535`: anything longer is no name and is not remembered, so 1024 hostile headers hold little memory. */
const MAX_HOST_PORT_LENGTH = 253 + 6;

/** `host` or `host:port` split, with the port checked; null when it is neither. */
export function splitHostPort(value: string | undefined): HostPort | null {
  if (value === undefined) return null;
  if (value.length > MAX_HOST_PORT_LENGTH) return null;
  let parts = splits.peek(value);
  if (parts === undefined) {
    parts = parseHostPort(value);
    splits.set(value, parts);
  }
  return parts;
}

function parseHostPort(value: string): HostPort | null {
  const match = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!match) return null;
  const host = parseHostname(match[1]!);
  const port = match[2] === undefined ? null : Number(match[2]);
  if (!host || (port !== null && (port < 1 || port > 65535))) return null;
  return Object.freeze({ host, port: port === 443 ? null : port });
}

/**
 * The upstream of a registry the configuration names (`host[:port]`, a custom domain's `to`): no
 * interception check. Named as for a Host header, so that cache keys and the access policy see the
 * same name whichever way a client came.
 */
export function registryUpstream(registry: string): UpstreamTarget | null {
  const parts = splitHostPort(registry);
  return parts ? targetOf(parts) : null;
}

/** `registry` and `origin` of a host and port (443 given as null). */
function targetOf(parts: HostPort): UpstreamTarget {
  const port = parts.port === null ? '' : `:${parts.port}`;
  return { registry: `${parts.host}${port}`, origin: `https://${ALIASES[parts.host] ?? parts.host}${port}` };
}

/**
 * The ports each intercepted registry is reached at: those REGISTRIES gives it (`r.example:5000`,
 * `*.pkg.dev:5000`, a bare name meaning 443), and 443 for a name it gives none (Docker Hub's names,
 * docker.proxy, custom domains). Any other port in a Host would be dialled on the registry's host:
 * a port scanner whose 503s tell open ports from closed ones.
 */
export class RegistryPorts {
  readonly #exact = new Map<string, Set<number>>();
  readonly #suffixes: Array<{ suffix: string; ports: Set<number> }> = [];

  /** `patterns`: REGISTRIES entries as configured, `host[:port]` or `*.suffix[:port]`. */
  constructor(patterns: Iterable<string>) {
    for (const pattern of patterns) {
      const [name = '', portText] = pattern.toLowerCase().split(':');
      const port = portText === undefined ? 443 : Number(portText);
      if (name.startsWith('*.')) {
        const suffix = name.slice(2).replace(/\.$/, '');
        const entry = this.#suffixes.find((e) => e.suffix === suffix) ?? this.#suffixes[this.#suffixes.push({ suffix, ports: new Set() }) - 1]!;
        entry.ports.add(port);
      } else {
        const host = name.replace(/\.$/, '');
        this.#exact.set(host, (this.#exact.get(host) ?? new Set()).add(port));
      }
    }
  }

  /** True when `host` (normalised, as splitHostPort gives it) is reached at `port` (null: 443). */
  allows(host: string, port: number | null): boolean {
    // On every request: no arrays built.
    const wanted = port ?? 443;
    const exact = this.#exact.get(host);
    let configured = exact !== undefined;
    if (exact?.has(wanted)) return true;
    for (const { suffix, ports } of this.#suffixes) {
      if (!host.endsWith(suffix) || host.length <= suffix.length || host[host.length - suffix.length - 1] !== '.') continue;
      if (ports.has(wanted)) return true;
      configured = true;
    }
    return !configured && wanted === 443;
  }
}

/**
 * The upstream for a request's Host header: only intercepted names, never
 * docker.proxy (our own) and never an arbitrary name, or Layover would be an
 * open proxy for anyone who can reach it; and only at a port `ports` allows
 * for that name (when given).
 */
export function upstreamTarget(hostHeader: string | undefined, intercepted: HostnameSet, ports?: RegistryPorts): UpstreamTarget | null {
  const parts = splitHostPort(hostHeader);
  if (!parts || parts.host === DOCKER_PROXY_HOST || !intercepted.has(parts.host)) return null;
  if (ports && !ports.allows(parts.host, parts.port)) return null;
  return targetOf(parts);
}
