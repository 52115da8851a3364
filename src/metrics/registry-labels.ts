import type { HostnameSet } from '../registry/hostname.js';

/**
 * Distinct registry label values kept; a name beyond them is counted as `other`. A wildcard in
 * REGISTRIES (`*.pkg.dev`) lets clients name registries freely, and every label value is a series
 * each scrape carries for the life of the process.
 */
export const MAX_REGISTRY_LABELS = 64;
/** The label of the registries beyond MAX_REGISTRY_LABELS. */
export const OTHER_REGISTRIES = 'other';

/**
 * The value of the `registry` label for a registry name: the name itself for a registry the
 * configuration names, the pattern (`*.pkg.dev`) for one a wildcard matched, once the intercepted
 * names are known (`useRegistries`); and at most MAX_REGISTRY_LABELS values in all, whatever a
 * client sends.
 */
export class RegistryLabels {
  readonly #seen = new Set<string>();
  #wildcardSuffixes: readonly string[] = [];

  constructor(private readonly max = MAX_REGISTRY_LABELS) {}

  /** Names under a wildcard of `intercepted` are counted under the wildcard. */
  useRegistries(intercepted: HostnameSet): void {
    this.#wildcardSuffixes = intercepted.wildcards().map((pattern) => pattern.slice(1));
  }

  /** '' for no registry (Layover's own routes). */
  label(name: string | undefined): string {
    if (name === undefined || name === '') return '';
    const value = this.#collapse(name.toLowerCase());
    if (this.#seen.has(value)) return value;
    if (this.#seen.size >= this.max) return OTHER_REGISTRIES;
    this.#seen.add(value);
    return value;
  }

  #collapse(name: string): string {
    const host = name.replace(/:\d+$/, '');
    const suffix = this.#wildcardSuffixes.find((candidate) => host.endsWith(candidate));
    return suffix === undefined ? name : `*${suffix}`;
  }
}
