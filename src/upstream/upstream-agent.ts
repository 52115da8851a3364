import { Agent, Dispatcher } from 'undici';
import type { LayoverConfig } from '../config/layover-config.js';
import { AddressPolicy } from './address-policy.js';
import { RealmGuard } from './auth/realm-guard.js';
import type { UpstreamResolver } from './upstream-resolver.js';
import { upstreamTls } from './upstream-tls.js';

/** How many origins we remember as HTTP/2-only; a forgotten one costs one more 426. */
const MAX_H2_ORIGINS = 1000;

/**
 * The dispatcher for every upstream request: an undici Dispatcher instance, not
 * an options object, because reply-from then uses it as it is (with bare options
 * a self-signed upstream was accepted, REGISTRY-NOTES). Names resolve through
 * our own resolver only; TLS is verified against the system roots plus
 * --upstream-ca (one context for every connection: ./upstream-tls.ts); the timeouts carry nginx's
 * proxy_* meanings.
 *
 * Upstreams are spoken to over HTTP/1.1, the faster protocol for large bodies;
 * an origin that answered 426 Upgrade Required is remembered and reached over
 * h2 from then on (see `upgradeOn426`).
 */
export class UpstreamDispatcher extends Dispatcher {
  readonly #http1: Agent;
  readonly #http2: Agent;
  readonly #h2Origins = new Set<string>();
  /** For token realms on other hosts than their registry: same resolvers and trust, guarded addresses. */
  readonly realms: RealmGuard;

  constructor(config: LayoverConfig, resolver: UpstreamResolver) {
    super();
    const tls = upstreamTls(config);
    this.realms = new RealmGuard({
      resolve: (hostname) => resolver.resolve(hostname),
      policy: new AddressPolicy(config.redirects.allowNetworks),
      tls,
      connectMs: config.timeouts.proxyConnectMs,
      readMs: config.timeouts.proxyReadMs,
    });
    const options: Agent.Options = {
      connect: {
        lookup: resolver.lookup,
        secureContext: tls.secureContext,
        rejectUnauthorized: tls.rejectUnauthorized,
        timeout: config.timeouts.proxyConnectMs,
        // Happy eyeballs over every address our resolver returns: an IPv6-only
        // or IPv4-only answer, or a dead address of one family, still connects.
        autoSelectFamily: true,
      },
      // proxy_read_timeout: the longest silence while reading a response, head or body.
      headersTimeout: config.timeouts.proxyReadMs,
      bodyTimeout: config.timeouts.proxyReadMs,
      keepAliveTimeout: 30_000,
      connections: 64,
    };
    this.#http1 = new Agent(options);
    this.#http2 = new Agent({ ...options, allowH2: true });
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(options.origin);
    return (this.#h2Origins.has(origin) ? this.#http2 : this.#http1).dispatch(options, handler);
  }

  /** True once `origin` (`https://host[:port]`) is reached over h2. */
  usesHttp2(origin: string): boolean {
    return this.#h2Origins.has(origin);
  }

  /** After a 426 from `origin`: returns true if a retry over h2 makes sense (the first time). */
  upgradeOn426(origin: string): boolean {
    if (this.#h2Origins.has(origin)) return false;
    if (this.#h2Origins.size >= MAX_H2_ORIGINS) this.#h2Origins.delete(this.#h2Origins.values().next().value!);
    this.#h2Origins.add(origin);
    return true;
  }

  override async close(): Promise<void> {
    await Promise.all([this.#http1.close(), this.#http2.close()]);
  }

  override async destroy(): Promise<void> {
    await Promise.all([this.#http1.destroy(), this.#http2.destroy()]);
  }
}
