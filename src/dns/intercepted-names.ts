/** The intercepted names split the way the generators need them. */
export interface InterceptedNames {
  names: string[];
  /** `*.suffix` patterns. */
  wildcards: string[];
}

export function splitPatterns(patterns: readonly string[]): InterceptedNames {
  return {
    names: patterns.filter((p) => !p.startsWith('*.')),
    wildcards: patterns.filter((p) => p.startsWith('*.')),
  };
}
