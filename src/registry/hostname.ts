/** A lower-case DNS name without a trailing dot, checked against RFC 1123. */
export type Hostname = string & { readonly __brand: 'Hostname' };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Returns the normalised hostname, or null when `input` is not a valid DNS name. */
export function parseHostname(input: string): Hostname | null {
  let name = input.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return null;
  for (const label of name.split('.')) if (!LABEL.test(label)) return null;
  return name as Hostname;
}

/**
 * The set of names Layover intercepts: exact names plus `*.suffix` wildcards,
 * where a wildcard matches any name below the suffix but not the suffix itself
 * (as in DNS and X.509).
 */
export class HostnameSet {
  readonly #exact = new Set<string>();
  readonly #suffixes: string[] = [];

  constructor(patterns: Iterable<string>) {
    for (const pattern of patterns) {
      if (pattern.startsWith('*.')) {
        const suffix = parseHostname(pattern.slice(2));
        if (!suffix) throw new Error(`not a hostname pattern: ${JSON.stringify(pattern)}`);
        if (!this.#suffixes.includes(suffix)) this.#suffixes.push(suffix);
      } else {
        const name = parseHostname(pattern);
        if (!name) throw new Error(`not a hostname: ${JSON.stringify(pattern)}`);
        this.#exact.add(name);
      }
    }
  }

  /** True when `name` (any case, optional trailing dot) is intercepted. */
  has(name: string): boolean {
    const normal = parseHostname(name);
    if (!normal) return false;
    if (this.#exact.has(normal)) return true;
    return this.#suffixes.some((suffix) => normal.endsWith(`.${suffix}`));
  }

  /** True when `name` is one of the exact names (not only under a wildcard). */
  named(name: string): boolean {
    const normal = parseHostname(name);
    return normal !== null && this.#exact.has(normal);
  }

  /** The exact names, in the order given. */
  names(): string[] {
    return [...this.#exact];
  }

  /** The wildcard patterns, as `*.suffix`. */
  wildcards(): string[] {
    return this.#suffixes.map((suffix) => `*.${suffix}`);
  }
}
