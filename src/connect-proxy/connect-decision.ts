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
  /** The ports each of those names is served at (src/proxy/upstream-target.ts RegistryPorts; 443 given as null). */
  readonly servedPorts: { allows(host: string, port: number | null): boolean };
  /**
   * Ports Layover serves TLS on: 443 and the ports of registries configured as `host:port`. They
   * are also the only ports a tunnel may reach: a CONNECT proxy to any port would relay SMTP, SSH
   * or whatever else an abuser likes.
   */
  readonly ports: ReadonlySet<number>;
  readonly policy: 'tunnel' | 'deny';
}

/**
 * The one place that decides what a CONNECT gets. A name is intercepted at the ports it is served
 * at (`r.example:5000` at 5000 only, a name without a port at 443); at any other port it is another
 * server of that host (GitLab's token realm on 443 beside its registry on 5050) and is tunnelled
 * like any host. An IP literal is never intercepted (a certificate for an address is not something
 * Layover mints).
 */
export function decideConnect(target: ConnectTarget, rules: ConnectRules): ConnectDecision {
  const portServed = rules.ports.has(target.port);
  if (target.kind === 'name' && portServed && rules.intercepted.has(target.host) && rules.servedPorts.allows(target.host, target.port === 443 ? null : target.port)) {
    return { decision: 'intercept' };
  }
  if (rules.policy === 'deny') return { decision: 'deny', reason: 'policy' };
  if (!portServed) return { decision: 'deny', reason: 'port' };
  return { decision: 'tunnel' };
}
