import type { LookupAddress } from 'node:dns';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream';
import { request } from 'undici';
import type { LayoverConfig } from '../../config/layover-config.js';
import type { UpstreamResolver } from '../../upstream/upstream-resolver.js';
import type { AddressPolicy } from '../../upstream/address-policy.js';
import { addressesOf, guardedAgent } from '../../upstream/guarded-agent.js';
import { upstreamTls, type UpstreamTls } from '../../upstream/upstream-tls.js';
import { discardBody } from '../../upstream/read-limited.js';

/** Redirects followed per fetch, after the first URL: enough for registry -> CDN -> relative path. */
export const MAX_STORAGE_HOPS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export type StorageFailure =
  | 'refused' // an address the policy forbids: nothing was sent
  | 'invalid-url' // not an http(s) URL, or one with credentials in it
  | 'hops' // more than MAX_STORAGE_HOPS redirects
  | 'status' // the storage host answered something other than 200
  | 'unreachable'; // DNS, connect, TLS or timeout

export class StorageFetchError extends Error {
  override readonly name = 'StorageFetchError';

  constructor(
    readonly reason: StorageFailure,
    message: string,
    /** The storage host (never the query string: it carries the storage signature). */
    readonly host: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface StorageResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** The host that answered (after any redirects). */
  host: string;
  hops: number;
}

export interface StorageFetchOptions {
  method: 'GET' | 'HEAD';
  /**
   * The registry that redirected: its origin, and its addresses, resolved lazily and only when a
   * storage address is not public. A registry on a private network may redirect to itself, at its
   * own scheme and port; another port on its address is another service.
   */
  upstream: { readonly origin: URL; readonly addresses: () => Promise<ReadonlySet<string>> } | null;
  /** A `Range` sent to every hop; a 206 is then an answer too. */
  range?: string;
}

export const isRedirectStatus = (status: number): boolean => REDIRECT_STATUSES.has(status);

/**
 * Fetches a storage URL the way a registry client would follow it, minus the client: no
 * Authorization or any other client header is ever sent (the registry's credentials are not the
 * storage host's business), Accept-Encoding is identity (the bytes are hashed), redirects are
 * followed up to MAX_STORAGE_HOPS with a relative Location resolved against the URL that sent it.
 *
 * Every hop resolves its host through the upstream resolver once, keeps only addresses the
 * AddressPolicy allows, and connects with an Agent that can reach only those (its lookup answers
 * with them; the connector checks the address the socket actually reached). A literal address or
 * a name whose every address is forbidden fails with 'refused' before anything is sent. One Agent
 * per hop: storage fetches are one per blob miss, so the lost keep-alive costs a handshake per blob.
 */
export class StorageFetcher {
  readonly #policy: AddressPolicy;
  readonly #resolver: UpstreamResolver;
  readonly #tls: UpstreamTls;
  readonly #timeouts: { connectMs: number; readMs: number };

  constructor(config: LayoverConfig, resolver: UpstreamResolver, policy: AddressPolicy) {
    this.#policy = policy;
    this.#resolver = resolver;
    this.#tls = upstreamTls(config);
    this.#timeouts = { connectMs: config.timeouts.proxyConnectMs, readMs: config.timeouts.proxyReadMs };
  }

  async fetch(start: URL, options: StorageFetchOptions): Promise<StorageResponse> {
    let url = start;
    let method = options.method;
    for (let hops = 0; ; hops++) {
      const response = await this.#fetchOne(url, method, options);
      const location = response.headers.location;
      if (!isRedirectStatus(response.statusCode) || typeof location !== 'string') {
        if (response.statusCode === 200 || (response.statusCode === 206 && options.range)) return { ...response, host: url.host, hops };
        discardBody(response.body);
        throw new StorageFetchError('status', `storage host ${url.host} answered ${response.statusCode}`, url.host, response.statusCode);
      }
      discardBody(response.body);
      if (hops >= MAX_STORAGE_HOPS) throw new StorageFetchError('hops', `more than ${MAX_STORAGE_HOPS} redirects (the last from ${url.host})`, url.host);
      try {
        url = new URL(location, url);
      } catch (error) {
        throw new StorageFetchError('invalid-url', `storage host ${url.host} redirected to an invalid URL`, url.host, undefined, { cause: error });
      }
      if (response.statusCode === 303) method = method === 'HEAD' ? 'HEAD' : 'GET';
    }
  }

  async #fetchOne(url: URL, method: 'GET' | 'HEAD', options: StorageFetchOptions): Promise<{ statusCode: number; headers: IncomingHttpHeaders; body: Readable }> {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new StorageFetchError('invalid-url', `storage URLs must be http or https, not ${url.protocol}`, url.host);
    }
    if (url.username || url.password) throw new StorageFetchError('invalid-url', `a storage URL with credentials in it is not followed (${url.host})`, url.host);
    const addresses = await this.#allowedAddresses(url, options);
    const agent = guardedAgent(url.hostname, addresses, {
      tls: this.#tls,
      connectMs: this.#timeouts.connectMs,
      readMs: this.#timeouts.readMs,
      refused: (remote) => new StorageFetchError('refused', `storage host ${url.host} connected to ${remote || 'an unknown address'}, which is not allowed`, url.host),
    });
    try {
      const response = await request(url, {
        dispatcher: agent,
        method,
        headers: { 'accept-encoding': 'identity', 'user-agent': 'layover', ...(options.range ? { range: options.range } : {}) },
      });
      const body = response.body as unknown as Readable;
      finished(body, () => void agent.close().catch(() => undefined));
      return { statusCode: response.statusCode, headers: response.headers, body };
    } catch (error) {
      void agent.destroy().catch(() => undefined);
      if (error instanceof StorageFetchError) throw error;
      const cause = error as NodeJS.ErrnoException;
      throw new StorageFetchError('unreachable', `storage host ${url.host} is unreachable (${cause.code ?? cause.message})`, url.host, undefined, { cause });
    }
  }

  /** The addresses of `url`'s host that the policy allows; throws 'refused' when there are none. */
  async #allowedAddresses(url: URL, options: StorageFetchOptions): Promise<LookupAddress[]> {
    let addresses: LookupAddress[];
    try {
      addresses = await addressesOf(url.hostname, (hostname) => this.#resolver.resolve(hostname));
    } catch (error) {
      const cause = error as NodeJS.ErrnoException;
      throw new StorageFetchError('unreachable', `cannot resolve storage host ${url.host} (${cause.code ?? cause.message})`, url.host, undefined, { cause });
    }
    const registry = options.upstream;
    // Only the registry's own name: another at its address (a vhost of a shared ingress) is another service.
    const registryItself = registry !== null && url.protocol === registry.origin.protocol && url.port === registry.origin.port && url.hostname.toLowerCase() === registry.origin.hostname.toLowerCase();
    let upstream: ReadonlySet<string> | undefined;
    const allowed: LookupAddress[] = [];
    let refusal = '';
    for (const entry of addresses) {
      let verdict = this.#policy.check(entry.address);
      if (!verdict.allowed && registryItself) {
        upstream ??= await registry.addresses().catch(() => new Set<string>());
        verdict = this.#policy.check(entry.address, upstream);
      }
      if (verdict.allowed) allowed.push(entry);
      else refusal ||= `${entry.address} is a ${verdict.kind} address`;
    }
    if (allowed.length === 0) {
      throw new StorageFetchError('refused', `Layover does not fetch from ${url.host}: ${refusal} (REDIRECT_ALLOW_NETWORKS)`, url.host);
    }
    return allowed;
  }
}
