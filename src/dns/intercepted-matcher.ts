import { type HostnameSet, parseHostname } from '../registry/hostname.js';

/**
 * HostnameSet.has for the DNS hot path. The wire reader already hands over a
 * lower-case name without a trailing dot, built from letters, digits, '-' and
 * '_' only, so an exact name is one Set look-up instead of HostnameSet's
 * parse (split and a regular expression per label) for every packet. Only a
 * name under a wildcard pays that parse, which still turns away labels
 * HostnameSet refuses (a leading '-', an over-long name).
 */
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
    if (this.#exact.has(name)) return true;
    for (const suffix of this.#suffixes) {
      if (name.endsWith(suffix)) return parseHostname(name) !== null;
    }
    return false;
  }
}
