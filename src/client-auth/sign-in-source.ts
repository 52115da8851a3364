import { ipv6Groups } from '../net/ipv6-groups.js';

/**
 * Who is signing in, for fairness between clients where checking a credential is costly (bcrypt):
 * an IPv4 address as it is, an IPv6 client by its /56 (one home or host is often given that many
 * /64s, as the DNS rate limiter reckons); '' when the address is unknown (those share one turn). The
 * address is the TCP peer's: clients behind one NAT or proxy are one source.
 */
export function signInSource(address: string | undefined): string {
  if (!address) return '';
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!address.includes(':')) return address;
  const [a = 0, b = 0, c = 0, d = 0] = ipv6Groups(address.split('%')[0]!.toLowerCase());
  return `${[a, b, c, d & 0xff00].map((group) => group.toString(16)).join(':')}::/56`;
}
