import type { LookupAddress } from 'node:dns';
import type { Dispatcher } from 'undici';
import type { AddressPolicy } from '../address-policy.js';
import { addressesOf, guardedAgent, type GuardedAgentOptions } from '../guarded-agent.js';
import { UpstreamAuthError } from './auth-error.js';

export interface RealmGuardOptions extends Omit<GuardedAgentOptions, 'refused'> {
  /** Through Layover's upstream resolvers, never the system's (which may point at Layover). */
  readonly resolve: (hostname: string) => Promise<LookupAddress[]>;
  readonly policy: AddressPolicy;
}

/**
 * Token realms on hosts other than the registry itself: a realm is the upstream's to choose, like a
 * redirect's Location, so it is reached only at addresses the AddressPolicy allows (public ones,
 * and REDIRECT_ALLOW_NETWORKS), checked on the address the connection really dials, as storage
 * redirects are (../guarded-agent.ts). A realm whose every address is forbidden fails with an
 * UpstreamAuthError `refused` before anything is sent. One Agent per realm request: Layover's
 * realm requests are token fetches, cached for the token's life, and the relay's, one per login.
 */
export class RealmGuard {
  readonly #options: RealmGuardOptions;

  constructor(options: RealmGuardOptions) {
    this.#options = options;
  }

  /** Runs `use` with a dispatcher that reaches `realm`'s host at allowed addresses only; closes it after. */
  async use<T>(realm: URL, use: (dispatcher: Dispatcher) => Promise<T>): Promise<T> {
    const addresses = await this.#allowedAddresses(realm);
    const agent = guardedAgent(realm.hostname, addresses, {
      ...this.#options,
      refused: (remote) => new UpstreamAuthError('refused', `token realm ${realm.host} connected to ${remote || 'an unknown address'}, which is not allowed (REDIRECT_ALLOW_NETWORKS)`),
    });
    try {
      return await use(agent);
    } finally {
      void agent.destroy().catch(() => undefined);
    }
  }

  async #allowedAddresses(realm: URL): Promise<LookupAddress[]> {
    let addresses: LookupAddress[];
    try {
      addresses = await addressesOf(realm.hostname, this.#options.resolve);
    } catch (error) {
      throw new UpstreamAuthError('unreachable', `cannot resolve token realm ${realm.host}`, undefined, { cause: error });
    }
    if (addresses.length === 0) throw new UpstreamAuthError('unreachable', `token realm ${realm.host} has no address`);
    const allowed = addresses.filter((entry) => this.#options.policy.check(entry.address).allowed);
    if (allowed.length > 0) return allowed;
    const first = addresses[0]!;
    throw new UpstreamAuthError('refused', `token realm ${realm.host} is at ${first.address}, a ${this.#options.policy.check(first.address).kind} address (REDIRECT_ALLOW_NETWORKS)`);
  }
}
