import { ipv6Groups } from '../net/ipv6-groups.js';

/**
 * Who is signing in, for fairness between clients where checking a credential is costly (bcrypt):
 * an IPv4 address as it is, an IPv6 client by its /64 (one host may hold all of it); '' when the
 * address is unknown (those share one turn).
 */
export function signInSource(address: string | undefined): string {
  if (!address) return '';
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address.split('%')[0]!.toLowerCase()).slice(0, 4);
  return `${groups.map((group) => group.toString(16)).join(':')}::/64`;
}
