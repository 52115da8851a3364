import { type HostnameSet, parseHostname } from '../registry/hostname.js';

/**
 * HostnameSet.has for the DNS hot path. The wire reader already hands over a
 * lower-case name without a trailing dot, built from letters, digits, '-' and
 * '_' only, so an exact name is one Set look-up instead of HostnameSet's
 * parse (split and a regular expression per label) for every packet. Only a
 * name under a wildcard pays that parse, which still turns away labels
 * HostnameSet refuses (a leading '-', an over-long name).
 */
/** InterceptedMatcher.match for a name intercepted as itself. */
export const EXACT = '';

export class InterceptedMatcher {
  readonly #exact: Set<string>;
  /** '.suffix' for every `*.suffix`. */
  readonly #suffixes: string[];

  constructor(intercepted: HostnameSet) {
    this.#exact = new Set(intercepted.names());
    this.#suffixes = intercepted.wildcards().map((pattern) => pattern.slice(1));
  }

  /** True when `name`, as readQuestion returns it, is intercepted. */
  has(name: string): boolean {
    return this.match(name) !== null;
  }

  /**
   * What intercepts `name`: EXACT for a name given as such, `*.suffix` for a name under a wildcard
   * (its answers are counted under the wildcard by the rate limit: a name each, a flood of invented
   * names would each get a full budget), null when it is not intercepted.
   */
  match(name: string): string | null {
    if (this.#exact.has(name)) return EXACT;
    for (const suffix of this.#suffixes) {
      if (name.endsWith(suffix)) return parseHostname(name) !== null ? `*${suffix}` : null;
    }
    return null;
  }
}
