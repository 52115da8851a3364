import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';

export interface Endpoint {
  host: string;
  port: number;
}

/** '::ffff:127.0.0.1' and '127.0.0.1' are one address; IPv6 text compares in lower case. */
export function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped ? mapped[1]! : lower;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/**
 * The addresses a packet sent to `listenHost` would reach us on. A wildcard
 * listener is reached on loopback and on every local interface.
 */
export function ownAddresses(listenHost: string): (address: string) => boolean {
  const host = normalizeAddress(listenHost);
  if (host !== '0.0.0.0' && host !== '::') return (address) => normalizeAddress(address) === host;
  const local = new Set<string>(['0.0.0.0', '::']);
  for (const addresses of Object.values(networkInterfaces())) {
    for (const info of addresses ?? []) local.add(normalizeAddress(info.address));
  }
  return (address) => {
    const normal = normalizeAddress(address);
    return isLoopback(normal) || local.has(normal);
  };
}

/**
 * Removes upstreams that would send queries back to Layover itself (its own
 * listen address and port), and upstreams that are not IP literals: resolving
 * an upstream's name could go through this very server.
 */
export function withoutSelf(upstreams: readonly Endpoint[], bound: Endpoint, logger: FastifyBaseLogger): Endpoint[] {
  const isOwn = ownAddresses(bound.host);
  const kept: Endpoint[] = [];
  for (const upstream of upstreams) {
    if (isIP(upstream.host) === 0) {
      logger.warn({ upstream: `${upstream.host}:${upstream.port}` }, 'dns upstream is not an IP address; ignoring it');
    } else if (upstream.port === bound.port && isOwn(upstream.host)) {
      logger.warn({ upstream: `${upstream.host}:${upstream.port}` }, 'dns upstream is this server itself; ignoring it to avoid a forwarding loop');
    } else {
      kept.push({ host: upstream.host, port: upstream.port });
    }
  }
  if (kept.length === 0 && upstreams.length > 0) logger.warn('dns: no usable upstream; names that are not intercepted get SERVFAIL');
  return kept;
}

/**
 * The local address:port of every socket the forwarder has open. A query that
 * arrives from one of them is our own forwarded query come back: a loop.
 */
export class LocalEndpoints {
  readonly #open = new Set<string>();

  static key(address: string, port: number): string {
    return `${normalizeAddress(address)}|${port}`;
  }

  add(address: string, port: number): string {
    const key = LocalEndpoints.key(address, port);
    this.#open.add(key);
    return key;
  }

  delete(key: string): void {
    this.#open.delete(key);
  }

  has(address: string, port: number): boolean {
    return this.#open.size > 0 && this.#open.has(LocalEndpoints.key(address, port));
  }
}
