import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

const CIDR = /^([^/]+?)(?:\/(\d{1,3}))?$/;
const MAX_REMEMBERED = 4096;

/**
 * A set of networks (CIDRs or bare addresses) parsed once into a node:net
 * BlockList, so that asking whether a client is inside costs one native range
 * check rather than parsing text per query. An IPv4-mapped IPv6 source
 * (a dual-stack socket's view of an IPv4 client) matches the IPv4 networks.
 */
export class ClientNetworks {
  readonly #list = new BlockList();
  /** Answers for recent clients; forgotten all at once when full, so a flood of spoofed sources cannot grow it. */
  readonly #seen = new Map<string, boolean>();

  constructor(networks: readonly string[]) {
    for (const network of networks) {
      const match = CIDR.exec(network.trim());
      const address = match?.[1] ?? '';
      const family = isIP(address);
      const max = family === 4 ? 32 : 128;
      const prefix = match?.[2] === undefined ? max : Number(match[2]);
      if (family === 0 || prefix > max) throw new RangeError(`not a network: ${network}`);
      this.#list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  includes(address: string): boolean {
    // The rate limit's exemption asks for every UDP reply: BlockList.check builds a SocketAddress
    // each time (a tenth of the hot path's time), a Map look-up of a known client does not.
    const known = this.#seen.get(address);
    if (known !== undefined) return known;
    if (this.#seen.size >= MAX_REMEMBERED) this.#seen.clear();
    const inside = this.#check(address);
    this.#seen.set(address, inside);
    return inside;
  }

  #check(address: string): boolean {
    if (address.includes(':')) {
      // rinfo gives link-local sources with their zone ('fe80::1%eth0'), which BlockList never matches.
      const zone = address.indexOf('%');
      return this.#list.check(zone < 0 ? address : address.slice(0, zone), 'ipv6');
    }
    return this.#list.check(address, 'ipv4');
  }
}

/** Loopback and the networks of this host's interfaces (their CIDRs, zones removed). */
export function hostNetworks(): string[] {
  const own = Object.values(networkInterfaces())
    .flat()
    .flatMap((a) => (a?.cidr ? [a.cidr.replace(/%[^/]*/, '')] : []));
  return [...new Set(['127.0.0.0/8', '::1/128', ...own])];
}
