import { hkdfSync } from 'node:crypto';
import type { LayoverConfig } from '../../config/layover-config.js';
import { DOCKER_PROXY_HOST } from '../../registry/well-known-hosts.js';
import type { HostnameSet } from '../../registry/hostname.js';
import { UpstreamResolver } from '../../upstream/upstream-resolver.js';
import { RegistryPorts, upstreamTarget } from '../upstream-target.js';
import { AddressPolicy, normalizeAddress } from '../../upstream/address-policy.js';
import { loadOrCreateRedirectKey, signedPath, verifySignedRequest, type StorageRedirect, type VerifyFailure } from './signed-url.js';
import { StorageFetcher, type StorageResponse } from './storage-fetch.js';
import { LruMap } from '../../tls/lru-map.js';

export type RedirectMode = 'rewrite' | 'follow';

/** How long a docker.proxy URL stays valid: the client follows it at once; storage URLs last longer. */
export const SIGNED_URL_LIFETIME_MS = 10 * 60_000;

declare module 'fastify' {
  interface FastifyInstance {
    /** Storage redirects (src/app.ts decorates the TLS listener with them). */
    storageRedirects: StorageRedirects;
  }
}

/**
 * What a blob redirect from a registry turns into: with REDIRECTS=rewrite a docker.proxy URL that
 * Layover signs (and later verifies and serves), with REDIRECTS=follow a fetch that follows the
 * chain. Holds the signing key (REDIRECT_KEY_FILE, `<data-dir>/redirect.key`) and the guarded storage fetcher.
 */
export class StorageRedirects {
  readonly mode: RedirectMode;
  readonly #key: Buffer;
  readonly #fetcher: StorageFetcher;
  readonly #resolver: UpstreamResolver;
  readonly #intercepted: HostnameSet;
  /** A signed URL outlives configuration changes: a port since taken out of REGISTRIES is refused too. */
  readonly #ports: RegistryPorts;
  /**
   * `origin|digest` -> when that registry's storage could not show the digest's bytes: answered from
   * memory for a while, as ReadAccess does for registries (each try is one guess at a random window,
   * and a storage fetch besides).
   */
  readonly refutedSamples = new LruMap<string, number>(10_000);

  private constructor(config: LayoverConfig, key: Buffer, intercepted: HostnameSet) {
    this.mode = config.redirects.mode;
    this.#key = key;
    this.#intercepted = intercepted;
    this.#ports = new RegistryPorts(config.registryPatterns);
    this.#resolver = new UpstreamResolver({ servers: config.upstreamDns });
    this.#fetcher = new StorageFetcher(config, this.#resolver, new AddressPolicy(config.redirects.allowNetworks));
  }

  static async open(config: LayoverConfig, intercepted: HostnameSet): Promise<StorageRedirects> {
    const key = await loadOrCreateRedirectKey(config.redirects.keyFile, { createIfMissing: config.cacheIndex.kind === 'sqlite' });
    return new StorageRedirects(config, key, intercepted);
  }

  /**
   * The docker.proxy URL for a blob redirect, on the port the client reached Layover at (every
   * Layover listener serves docker.proxy; DNS gives it the same addresses as the registry names).
   */
  signedUrl(clientHost: string | undefined, redirect: Omit<StorageRedirect, 'expires'>, nowMs = Date.now()): string {
    const port = /^(?:[^:[\]]+|\[[^\]]+\]):(\d{1,5})$/.exec(clientHost ?? '')?.[1];
    const authority = port && port !== '443' ? `${DOCKER_PROXY_HOST}:${port}` : DOCKER_PROXY_HOST;
    const expires = Math.ceil((nowMs + SIGNED_URL_LIFETIME_MS) / 1000);
    return `https://${authority}${signedPath(this.#key, { ...redirect, expires })}`;
  }

  /**
   * A key for another purpose that every replica derives alike from the signing key they share
   * (HKDF-SHA256; e.g. the one sealing upstream tokens in the shared index): the signing key itself
   * never leaves this object.
   */
  derivedKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `layover ${purpose}`, 32));
  }

  verify(digest: string, query: URLSearchParams): StorageRedirect | VerifyFailure {
    return verifySignedRequest(this.#key, digest, query);
  }

  /** True while `registry` is still a name Layover proxies (the key outlives configuration changes). */
  proxies(registry: string): boolean {
    return upstreamTarget(registry, this.#intercepted, this.#ports) !== null;
  }

  /**
   * Fetches `target` for a blob of `registry` (an intercepted name, or the registry's origin
   * `https://…`), following redirects; the registry's own addresses are allowed at its own port.
   * With `range`, a 206 is an answer too.
   */
  fetch(target: URL, registry: string, method: 'GET' | 'HEAD', range?: string): Promise<StorageResponse> {
    const origin = this.originOf(registry);
    const upstream = origin ? { origin: new URL(origin), addresses: () => this.#addressesOf(new URL(origin).hostname) } : null;
    return this.#fetcher.fetch(target, { method, upstream, ...(range ? { range } : {}) });
  }

  /** The upstream origin of `registry` (an intercepted name, or already an origin `https://…`); undefined when it is not proxied. */
  originOf(registry: string): string | undefined {
    return registry.startsWith('https://') ? registry : upstreamTarget(registry, this.#intercepted, this.#ports)?.origin;
  }

  async #addressesOf(hostname: string): Promise<ReadonlySet<string>> {
    const addresses = await this.#resolver.resolve(hostname);
    return new Set(addresses.map((a) => normalizeAddress(a.address)));
  }
}
