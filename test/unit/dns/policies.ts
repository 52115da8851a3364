/** DnsServer policies for tests: the defaults of LayoverConfig.dnsPolicy, with recursion open to loopback. */
import type { DnsServerOptions } from '../../../src/dns/dns-server.js';

type DnsPolicy = DnsServerOptions['policy'];

/**
 * Loopback may recurse and nothing is rate-limited: for tests about answers
 * rather than defences, which ask the same question many times a second.
 * Nobody is exempt from a limit a test sets, loopback included.
 */
export const LOOPBACK_POLICY: DnsPolicy = {
  allowRecursion: ['127.0.0.0/8', '::1/128'],
  rateLimit: 0,
  rateLimitExempt: [],
  rateLimitSlip: 2,
  tcpQueryMs: 5_000,
  tcpMaxPerClient: 16,
};

export function dnsPolicy(overrides: Partial<DnsPolicy> = {}): DnsPolicy {
  return { ...LOOPBACK_POLICY, ...overrides };
}
