import type { RegistryCredential } from '../../config/credentials.js';
import type { RepositoryName } from '../../registry/repository-name.js';
import { type HelperRunner, type ResolvedCredential, runCredentialHelper } from './credential-helper.js';
import { hostOnly, sameSite } from './realm-policy.js';

/**
 * Docker Hub's names for one registry: an entry under any of them applies to all. Its token service
 * auth.docker.io is one of them: the nginx proxies' users key Docker Hub's entry by it.
 */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'auth.docker.io']);
const canonical = (host: string): string => {
  const lower = host.toLowerCase();
  return DOCKER_HUB.has(lower) ? 'docker.io' : lower;
};

interface HelperAnswer {
  promise: Promise<ResolvedCredential>;
  at: number;
  value?: ResolvedCredential;
}

/** How logs and errors name a credential: never by its secret. */
export function credentialName(entry: RegistryCredential): string {
  const where = entry.prefix ? `${entry.registry}/${entry.prefix}` : entry.registry;
  return entry.helper ? `helper ${entry.helper.name} for ${where}` : `${entry.username}@${where}`;
}

/**
 * The configured credentials: which one a request uses (by registry, repository prefix, or the
 * host of the registry's token realm) and its username and password now (running a credential
 * helper when its last answer is older than its max age or was rejected).
 */
export class CredentialStore {
  readonly #entries: readonly RegistryCredential[];
  readonly #runHelper: HelperRunner;
  readonly #now: () => number;
  readonly #answers = new Map<RegistryCredential, HelperAnswer>();

  /** Hostnames Layover proxies as registries (REGISTRIES): an entry keyed by one is that registry's. */
  readonly #isRegistry: (hostname: string) => boolean;

  /** Hostnames Layover proxies only through a wildcard of REGISTRIES: the operator named none of them. */
  readonly #wildcardOnly: (hostname: string) => boolean;

  constructor(
    entries: readonly RegistryCredential[],
    options: { runHelper?: HelperRunner; now?: () => number; isRegistry?: (hostname: string) => boolean; wildcardOnly?: (hostname: string) => boolean } = {},
  ) {
    this.#entries = entries;
    this.#isRegistry = options.isRegistry ?? (() => false);
    this.#wildcardOnly = options.wildcardOnly ?? (() => false);
    this.#runHelper = options.runHelper ?? runCredentialHelper;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Whether any entry may apply to `registry` (`host[:port]`): keyed by it, or by a host on its
   * registrable domain (a token realm such as auth.docker.io). Registries for which this is false
   * are proxied exactly as without credentials.
   */
  covers(registry: string): boolean {
    const key = canonical(registry);
    return this.#entries.some((e) => canonical(e.registry) === key || sameSite(e.registry, key));
  }

  /**
   * The credential for a repository of `registry`: among the entries keyed by the registry, the
   * one with the longest matching repository prefix (an entry without prefix matches every
   * repository; `repository` null, e.g. the ping, takes only those). Failing that, the entries
   * keyed by the registry's token realm host (an auth host such as GitLab's), chosen the same way;
   * never those of another registry Layover proxies (any registry may name any realm, and would get
   * the token minted with that registry's credential), and only for a registry the operator named.
   */
  select(registry: string, repository: RepositoryName | null, realmHost: string | null): RegistryCredential | null {
    const own = this.#longestPrefix(canonical(registry), repository);
    if (own || !realmHost) return own;
    if (this.#isRegistry(hostOnly(realmHost)) && canonical(realmHost) !== canonical(registry)) return null;
    // A registry under a wildcard may be anyone's (an attacker's host under *.corp.example): it names
    // whatever realm it likes. Only registries the operator named borrow the realm host's entry.
    if (this.#wildcardOnly(hostOnly(registry))) return null;
    return this.#longestPrefix(canonical(realmHost), repository);
  }

  #longestPrefix(key: string, repository: RepositoryName | null): RegistryCredential | null {
    let best: RegistryCredential | null = null;
    let bestLength = -1;
    for (const entry of this.#entries) {
      if (canonical(entry.registry) !== key) continue;
      const prefix = entry.prefix ?? '';
      const matches = prefix === '' || (repository !== null && (repository === prefix || repository.startsWith(`${prefix}/`)));
      if (matches && prefix.length > bestLength) {
        best = entry;
        bestLength = prefix.length;
      }
    }
    return best;
  }

  /** True when an entry of `registry` names `realmHost` as its `realm`: the operator vouched for that host. */
  configuresRealm(registry: string, realmHost: string): boolean {
    const key = canonical(registry);
    const host = realmHost.toLowerCase();
    return this.#entries.some((e) => e.realm === host && canonical(e.registry) === key);
  }

  /** Username and password to send: as configured, or the helper's answer (re-run when older than its max age). */
  resolve(entry: RegistryCredential): Promise<ResolvedCredential> {
    if (!entry.helper) return Promise.resolve({ username: entry.username, password: entry.password });
    const cached = this.#answers.get(entry);
    if (cached && this.#now() - cached.at < entry.helper.maxAgeMs) return cached.promise;
    const answer: HelperAnswer = { at: this.#now(), promise: this.#runHelper(entry.helper.name, entry.registry) };
    answer.promise.then(
      (value) => (answer.value = value),
      () => {
        if (this.#answers.get(entry) === answer) this.#answers.delete(entry);
      },
    );
    this.#answers.set(entry, answer);
    return answer.promise;
  }

  /**
   * The upstream refused `used` (what resolve() gave for `entry`). A helper's answer is dropped so
   * the next resolve() runs the helper again; returns true when that may help (a helper credential).
   */
  invalidate(entry: RegistryCredential, used: ResolvedCredential): boolean {
    if (!entry.helper) return false;
    // Several requests refused with the same answer run the helper once, not once each.
    if (this.#answers.get(entry)?.value === used) this.#answers.delete(entry);
    return true;
  }
}
