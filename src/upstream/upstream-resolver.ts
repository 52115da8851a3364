import { Resolver } from 'node:dns/promises';
import type { LookupAddress, LookupOneOptions, LookupAllOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { HostPort } from '../config/parsers.js';

export interface UpstreamResolverOptions {
  servers: readonly HostPort[];
  /** Per try, as c-ares counts it. */
  timeoutMs?: number;
  tries?: number;
  maxEntries?: number;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

interface Entry {
  addresses: LookupAddress[];
  expires: number;
}

const serverString = ({ host, port }: HostPort): string => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`);

/**
 * Resolves upstream registry names through the configured real resolvers only.
 * The system resolver may be pointed at Layover itself, whose DNS answers the
 * registry names with our own address: using it would proxy to ourselves.
 * Answers are cached for their TTL (bounded); IPv4 comes first, IPv6 is the
 * fallback, and a name with only one family still resolves.
 */
export class UpstreamResolver {
  readonly #resolver: Resolver;
  readonly #cache = new Map<string, Entry>();
  readonly #pending = new Map<string, Promise<LookupAddress[]>>();
  readonly #maxEntries: number;

  constructor({ servers, timeoutMs = 2000, tries = 2, maxEntries = 1000 }: UpstreamResolverOptions) {
    this.#resolver = new Resolver({ timeout: timeoutMs, tries });
    this.#resolver.setServers(servers.map(serverString));
    this.#maxEntries = maxEntries;
  }

  /** Every address of `hostname`, IPv4 first. Rejects with ENOTFOUND when there is none. */
  async resolve(hostname: string): Promise<LookupAddress[]> {
    const family = isIP(hostname);
    if (family) return [{ address: hostname, family }];
    const name = hostname.toLowerCase().replace(/\.$/, '');
    const cached = this.#cache.get(name);
    if (cached && cached.expires > Date.now()) return cached.addresses;
    let pending = this.#pending.get(name);
    if (!pending) {
      pending = this.#query(name).finally(() => this.#pending.delete(name));
      this.#pending.set(name, pending);
    }
    return pending;
  }

  async #query(name: string): Promise<LookupAddress[]> {
    const [v4, v6] = await Promise.allSettled([
      this.#resolver.resolve4(name, { ttl: true }),
      this.#resolver.resolve6(name, { ttl: true }),
    ]);
    const records = [
      ...(v4.status === 'fulfilled' ? v4.value.map((r) => ({ ...r, family: 4 })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((r) => ({ ...r, family: 6 })) : []),
    ];
    if (records.length === 0) {
      const reason = (v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : null) as NodeJS.ErrnoException | null;
      const error: NodeJS.ErrnoException = new Error(`cannot resolve ${name} through the upstream resolvers (${reason?.code ?? 'no addresses'})`, { cause: reason });
      error.code = reason?.code === 'ETIMEOUT' || reason?.code === 'ECONNREFUSED' ? 'EAI_AGAIN' : 'ENOTFOUND';
      throw error;
    }
    const ttl = Math.max(1, Math.min(...records.map((r) => r.ttl)));
    const addresses = records.map(({ address, family }) => ({ address, family }));
    if (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(name, { addresses, expires: Date.now() + ttl * 1000 });
    return addresses;
  }

  /** A `lookup` for net.connect and undici's `connect.lookup`; honours `family` and `all`. */
  readonly lookup = (hostname: string, options: LookupOneOptions | LookupAllOptions | number, callback: LookupCallback): void => {
    const opts = typeof options === 'number' ? { family: options } : options;
    const wanted = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : Number(opts.family ?? 0);
    this.resolve(hostname).then(
      (all) => {
        const addresses = wanted ? all.filter((a) => a.family === wanted) : all;
        if (addresses.length === 0) {
          const error: NodeJS.ErrnoException = new Error(`no IPv${wanted} address for ${hostname}`);
          error.code = 'ENOTFOUND';
          return callback(error, '');
        }
        if (opts.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}
