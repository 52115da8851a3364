import { clientPrefix } from '../net/client-prefix.js';

/**
 * Who is signing in, for fairness between clients where checking a credential is costly (bcrypt):
 * an IPv4 address as it is, an IPv6 client by its /56 (one home or host is often given that many
 * /64s, as the DNS rate limiter reckons: clientPrefix); '' when the address is unknown (those share
 * one turn). The address is the TCP peer's: clients behind one NAT or proxy are one source.
 */
export function signInSource(address: string | undefined): string {
  if (!address) return '';
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  return address.includes(':') ? clientPrefix(address) : address;
}
