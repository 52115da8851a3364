import type { ConnectTarget } from './connect-target.js';

export type ConnectDecision =
  /** TLS ends at Layover, with the certificate for the name; requests take the routes of port 443. */
  | { readonly decision: 'intercept' }
  /** Bytes are relayed to the real host, unread. */
  | { readonly decision: 'tunnel' }
  /** Refused: CONNECT_POLICY=deny, or a port no registry uses. */
  | { readonly decision: 'deny'; readonly reason: 'policy' | 'port' };

export interface ConnectRules {
  /** The names Layover serves as if it were them (the app's HostnameSet; custom domains belong here too). */
  readonly intercepted: { has(name: string): boolean };
  /**
   * Ports Layover serves TLS on for those names: 443 and the ports of registries configured as
   * `host:port`. They are also the only ports a tunnel may reach: a CONNECT proxy to any port
   * would relay SMTP, SSH or whatever else an abuser likes.
   */
  readonly ports: ReadonlySet<number>;
  readonly policy: 'tunnel' | 'deny';
}

/**
 * The one place that decides what a CONNECT gets. A name is intercepted on the ports above, as a
 * hijacked DNS answer would send it to Layover's listeners there; an IP literal never is (a
 * certificate for an address is not something Layover mints).
 */
export function decideConnect(target: ConnectTarget, rules: ConnectRules): ConnectDecision {
  const portServed = rules.ports.has(target.port);
  if (target.kind === 'name' && portServed && rules.intercepted.has(target.host)) return { decision: 'intercept' };
  if (rules.policy === 'deny') return { decision: 'deny', reason: 'policy' };
  if (!portServed) return { decision: 'deny', reason: 'port' };
  return { decision: 'tunnel' };
}
